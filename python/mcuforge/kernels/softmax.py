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

# Q0.31 exp(-2^k) for k = -2 .. 4, gemmlowp's barrel shifter constants
_EXP_MULTIPLIERS = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    constant_term = 1895147668     # exp(-1/8), Q0.31
    constant_1_over_3 = 715827883
    x = _wrap(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbp(x4, 2)
    poly = _rdbp(_wrap(_srdhm(_wrap(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return _wrap(constant_term + _srdhm(constant_term, _wrap(x + poly)))


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values for Q5.26 input, Q0.31 output."""
    a = np.asarray(a, dtype=np.int64)
    one_quarter = 1 << 24
    a_mod = _wrap((a & (one_quarter - 1)) - one_quarter)
    remainder = _wrap(a_mod - a)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(fp.saturating_left_shift(a_mod, 5))
    for i, m in enumerate(_EXP_MULTIPLIERS):
        bit = (remainder & (1 << (24 + i))) != 0
        result = np.where(bit, _srdhm(result, m), result)
    return np.where(a == 0, fp.INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out."""
    a = np.asarray(a, dtype=np.int64)
    s = a + fp.INT32_MAX  # RoundingHalfSum(a, 1.0)
    sign = np.where(s >= 0, 1, -1)
    v = s + sign
    half_denominator = np.where(v >= 0, v // 2, -((-v) // 2))
    x = _wrap(1515870810 + _srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _wrap((1 << 29) - _srdhm(half_denominator, x))
        x = _wrap(x + fp.saturating_left_shift(_srdhm(x, one_minus), 2))
    return fp.saturating_left_shift(x, 1)


def _clz32(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    n = np.full(u.shape, 32, dtype=np.int64)
    nz = u != 0
    # exact for integers < 2^53: floor(log2(u)) via frexp
    _, e = np.frexp(np.where(nz, u, 1).astype(np.float64))
    return np.where(nz, 32 - e.astype(np.int64), n)


def softmax_s8(params: dict, x) -> np.ndarray:
    p = params
    rows, cols = int(p["rows"]), int(p["cols"])
    multiplier = int(p["input_multiplier"])
    left_shift = int(p["input_left_shift"])
    diff_min = int(p["diff_min"])
    if rows < 0 or cols <= 0 or not 0 <= left_shift <= 31 or diff_min > 0:
        raise ValueError("bad softmax parameters")
    xi = as_int8(x, rows * cols).reshape(rows, cols).astype(np.int64)
    diff = xi - xi.max(axis=1, keepdims=True)
    use = diff >= diff_min
    scaled = _srdhm(_wrap(diff << left_shift), multiplier)
    e = exp_on_negative_values(scaled)
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
