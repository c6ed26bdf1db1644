"""NumPy twin of mcf_reduce_s8 (mcf_reduce.c): int8 MEAN (TFLM
QuantizedMeanOrSum) and REDUCE_MAX over the middle axis of an
(outer, reduce, inner) view."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8

MEAN, MAX = 0, 1


def reduce_s8(params: dict, x) -> np.ndarray:
    p = params
    outer, n, inner = (int(p[k]) for k in ("outer_count", "reduce_count", "inner_count"))
    kind = int(p["kind"])
    if min(outer, n, inner) <= 0 or not -31 <= int(p["shift"]) <= 31 or kind not in (MEAN, MAX):
        raise ValueError("bad reduce parameters")
    v = as_int8(x, outer * n * inner).reshape(outer, n, inner).astype(np.int64)
    if kind == MAX:
        return v.max(axis=1).reshape(-1).astype(np.int8)
    multiplier, shift = fp.mean_fold_multiplier(int(p["multiplier"]), int(p["shift"]), n)
    total = v.sum(axis=1) + int(p["input_offset"]) * n
    out = fp.multiply_by_quantized_multiplier(total, multiplier, shift) + int(p["output_offset"])
    return np.clip(out, -128, 127).astype(np.int8).reshape(-1)
