"""NumPy twin of mcf_mean_s8 (TFLM MEAN int8 over H and W:
reference_ops::QuantizedMeanOrSum with the run-time 1/n folding)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8, positive


def mean_s8(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_h", "in_w", "channels")
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["channels"])
    if not -31 <= int(p["shift"]) <= 31:
        raise ValueError("shift out of [-31, 31]")
    n = h * w
    multiplier, shift = fp.mean_fold_multiplier(int(p["multiplier"]), int(p["shift"]), n)
    total = as_int8(x, n * c).reshape(n, c).astype(np.int64).sum(axis=0) + int(p["input_offset"]) * n
    out = fp.multiply_by_quantized_multiplier(total, multiplier, shift) + int(p["output_offset"])
    return np.clip(out, -128, 127).astype(np.int8)
