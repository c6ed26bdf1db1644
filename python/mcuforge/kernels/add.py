"""NumPy twin of mcf_add_s8 (TFLM reference_integer_ops::AddFunc, int8)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8, check_act


def _scale_down(x, multiplier, shift) -> np.ndarray:
    # MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0)
    return fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def add_s8(params: dict, a, b) -> np.ndarray:
    p = params
    size = int(p["size"])
    lo, hi = check_act(p)
    left = int(p["left_shift"])
    shifts = [int(p[k]) for k in ("input1_shift", "input2_shift", "output_shift")]
    if size < 0 or not 0 <= left <= 30 or any(not -31 <= s <= 0 for s in shifts):
        raise ValueError("bad add parameters")
    a = as_int8(a, size, "input1").astype(np.int64) + int(p["input1_offset"])
    b = as_int8(b, size, "input2").astype(np.int64) + int(p["input2_offset"])
    sa = _scale_down(fp.wrap_int32(a << left), int(p["input1_multiplier"]), shifts[0])
    sb = _scale_down(fp.wrap_int32(b << left), int(p["input2_multiplier"]), shifts[1])
    out = _scale_down(fp.wrap_int32(sa + sb), int(p["output_multiplier"]), shifts[2]) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(np.int8)
