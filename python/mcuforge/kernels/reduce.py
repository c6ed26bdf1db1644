"""NumPy twin of mcf_reduce_s8 (mcf_reduce.c): int8 MEAN (TFLM
QuantizedMeanOrSum) and REDUCE_MAX over the axes `reduce` marks of a 4-D
tensor of `in_shape`."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8

MEAN, MAX = 0, 1


def reduce_s8(params: dict, x) -> np.ndarray:
    p = params
    shape = tuple(int(v) for v in p["in_shape"])
    axes = tuple(d for d in range(4) if int(p["reduce"][d]))
    kind = int(p["kind"])
    if len(shape) != 4 or min(shape) <= 0 or not -31 <= int(p["shift"]) <= 31 or kind not in (MEAN, MAX):
        raise ValueError("bad reduce parameters")
    v = as_int8(x, int(np.prod(shape))).reshape(shape).astype(np.int64)
    if kind == MAX:
        return v.max(axis=axes).reshape(-1).astype(np.int8) if axes else v.reshape(-1).astype(np.int8)
    n = int(np.prod([shape[d] for d in axes])) if axes else 1
    multiplier, shift = fp.mean_fold_multiplier(int(p["multiplier"]), int(p["shift"]), n)
    total = (v.sum(axis=axes) if axes else v) + int(p["input_offset"]) * n
    out = fp.multiply_by_quantized_multiplier(total, multiplier, shift) + int(p["output_offset"])
    return np.clip(out, -128, 127).astype(np.int8).reshape(-1)
