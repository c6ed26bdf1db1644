"""NumPy twin of mcf_softmax_s8: TFLM's int8 softmax (reference_ops::Softmax
with gemmlowp fixed-point exp_on_negative_values and
one_over_one_plus_x_for_x_in_0_1), vectorised over the whole tensor."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8

_srdhm = fp.saturating_rounding_doubling_high_mul
_rdbp = fp.rounding_divide_by_pot
_wrap = fp.wrap_int32



def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values for Q5.26 input, Q0.31 output."""
    return fp.exp_on_negative_values(a, 5)


one_over_one_plus_x_for_x_in_0_1 = fp.one_over_one_plus_x_for_x_in_0_1


def _clz32(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    n = np.full(u.shape, 32, dtype=np.int64)
    nz = u != 0
    # exact for integers < 2^53: floor(log2(u)) via frexp
    _, e = np.frexp(np.where(nz, u, 1).astype(np.float64))
    return np.where(nz, 32 - e.astype(np.int64), n)


def exps(p: dict, diff: np.ndarray) -> np.ndarray:
    """exp of the differences diff <= 0 from a row's maximum, Q0.31, as TFLM
    computes it (SRDHM(diff << input_left_shift, input_multiplier), then
    exp_on_negative_values); 0 below diff_min, where TFLM skips the value."""
    diff = np.asarray(diff, dtype=np.int64)
    scaled = _srdhm(_wrap(diff << int(p["input_left_shift"])), int(p["input_multiplier"]))
    return np.where(diff >= int(p["diff_min"]), exp_on_negative_values(scaled), 0)


def softmax_s8(params: dict, x) -> np.ndarray:
    p = params
    rows, cols = int(p["rows"]), int(p["cols"])
    left_shift = int(p["input_left_shift"])
    diff_min = int(p["diff_min"])
    if rows < 0 or cols <= 0 or not 0 <= left_shift <= 31 or diff_min > 0:
        raise ValueError("bad softmax parameters")
    xi = as_int8(x, rows * cols).reshape(rows, cols).astype(np.int64)
    diff = xi - xi.max(axis=1, keepdims=True)
    use = diff >= diff_min
    e = exps(p, diff)
    sum_of_exps = _wrap(np.where(use, _rdbp(e, 12), 0).sum(axis=1, keepdims=True))

    headroom = _clz32(sum_of_exps)
    num_bits_over_unit = 12 - headroom
    shifted_minus_one = _wrap(((sum_of_exps & 0xFFFFFFFF) << headroom) - (1 << 31))
    reciprocal = one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    prod = _srdhm(reciprocal, e)
    wide = exponent > 31  # TFLM stops there; the nonnegative product rounds to 0
    value = np.where(wide, 0, _rdbp(prod, np.clip(exponent, 0, 31))) - 128
    value = np.where(use, np.clip(value, -128, 127), -128)
    return value.astype(np.int8).reshape(-1)
