"""Integer fixed-point arithmetic of TFLite/TFLM, in Python and NumPy.

Everything here equals, bit for bit, both TFLM's reference code and the C
runtime (``runtime/src/mcf_fixedpoint.c``):

* ``quantize_multiplier`` and friends: ``tensorflow/lite/kernels/internal/
  quantization_util.cc`` (QuantizeMultiplier, QuantizeMultiplierSmallerThanOneExp,
  QuantizeMultiplierGreaterThanOne, PreprocessSoftmaxScaling,
  CalculateInputRadius), built without TFLITE_SINGLE_ROUNDING.
* ``saturating_rounding_doubling_high_mul``, ``rounding_divide_by_pot``:
  gemmlowp ``fixedpoint/fixedpoint.h``.
* ``multiply_by_quantized_multiplier``: TFLM's double-rounding
  MultiplyByQuantizedMultiplier (``tensorflow/lite/kernels/internal/common.cc``).
* ``add_params``: TFLM ADD preparation (``micro/kernels/add_common.cc``).
* ``mean_params``: TFLM MEAN preparation (``micro/kernels/reduce_common.cc``).

The array functions take any integer array-likes and return ``np.int64``
arrays whose values lie in the int32 range; where the C code relies on
two's complement wrap-around (``x * (1 << left_shift)``) the NumPy code wraps
the same way.

Scales passed to the ``*_params`` helpers and to the softmax helpers are
first rounded to float32, because TFLite stores them as float32 and does its
arithmetic in double from there.

>>> quantize_multiplier(0.5)
(1073741824, 0)
>>> quantize_multiplier(1.0)
(1073741824, 1)
>>> int(multiply_by_quantized_multiplier(100, *quantize_multiplier(0.25)))
25
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    "INT32_MIN", "INT32_MAX", "wrap_int32",
    "quantize_multiplier", "quantize_multiplier_array",
    "quantize_multiplier_smaller_than_one_exp", "quantize_multiplier_greater_than_one",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "saturating_left_shift",
    "preprocess_softmax_scaling", "calculate_input_radius",
    "add_params", "sub_params", "mean_params", "mean_fold_multiplier", "f32div", "f32",
]


def f32(x: float) -> float:
    """The double TFLite sees for a float32 scale."""
    return float(np.float32(x))


def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound on a double."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def wrap_int32(x) -> np.ndarray:
    """Two's complement wrap of int64 values to the int32 range.

    >>> wrap_int32(np.array([2**31, -2**31 - 1, 5])).tolist()
    [-2147483648, 2147483647, 5]
    """
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


# ---------------------------------------------------------------- multipliers

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: ``real ~= multiplier * 2^(shift - 31)``.

    Frexp, round half away from zero of the Q31 mantissa, the 2^31 edge case
    moves to the next exponent, and shifts below -31 flush to (0, 0).

    >>> quantize_multiplier(0.0)
    (0, 0)
    >>> quantize_multiplier(1 - 2**-40)   # rounds up to 2^31: shift bumps
    (1073741824, 1)
    >>> quantize_multiplier(2**-40)
    (0, 0)
    >>> quantize_multiplier(-0.75)
    (-1610612736, 0)
    """
    real = float(real)
    if not math.isfinite(real):
        raise ValueError(f"multiplier {real!r} is not finite")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if abs(q_fixed) > (1 << 31):
        raise AssertionError("frexp mantissa out of range")  # cannot happen
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise ValueError(f"multiplier {real!r} cannot be represented")
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_array(reals) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`quantize_multiplier`; returns int32 arrays.

    >>> m, s = quantize_multiplier_array([0.5, 1.0, 0.0, 3e-10])
    >>> m.tolist(), s.tolist()
    ([1073741824, 1073741824, 0, 1383505806], [0, 1, 0, -31])
    """
    reals = np.asarray(reals, dtype=np.float64)
    if not np.all(np.isfinite(reals)):
        raise ValueError("multipliers must be finite")
    q, shift = np.frexp(reals)
    scaled = q * float(1 << 31)  # exact: a power-of-two scaling
    # |scaled| >= 2^30 (or 0), so adding 0.5 is exact: this is round half away.
    q_fixed = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)
    shift = shift.astype(np.int64)
    edge = q_fixed == (1 << 31)
    q_fixed = np.where(edge, q_fixed // 2, q_fixed)
    shift = np.where(edge, shift + 1, shift)
    if np.any(q_fixed > INT32_MAX):
        raise ValueError("multiplier cannot be represented")
    zero = (reals == 0.0) | (shift < -31)
    q_fixed = np.where(zero, 0, q_fixed)
    shift = np.where(zero, 0, shift)
    return q_fixed.astype(np.int32), shift.astype(np.int32)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp: 0 < real < 1, shift <= 0.

    >>> quantize_multiplier_smaller_than_one_exp(0.25)
    (1073741824, -1)
    """
    real = float(real)
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real!r} must be in (0, 1)")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"multiplier {real!r} rounds up to 1.0")
    return multiplier, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne: shift >= 0."""
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real!r} must be >= 1")
    return multiplier, shift


# ------------------------------------------------------------ integer helpers

def _trunc_shift_right(v: np.ndarray, n: int) -> np.ndarray:
    """v / 2^n rounded toward zero (C integer division)."""
    return np.where(v >= 0, v >> n, -((-v) >> n))


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31).

    Ties round up (toward +inf: gemmlowp's nudge is 2^30 for a positive
    product and 1 - 2^30 for a negative one); INT32_MIN * INT32_MIN saturates
    to INT32_MAX.

    >>> saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN).item()
    2147483647
    >>> saturating_rounding_doubling_high_mul([3, -3], 1 << 29).tolist()   # 0.75 -> 1, -0.75 -> -1
    [1, -1]
    >>> saturating_rounding_doubling_high_mul([1, -1, -3], 1 << 30).tolist()  # 0.5 -0.5 -1.5
    [1, 0, -1]
    """
    return _srdhm_bits(a, b, 32)


def _srdhm_bits(a, b, bits: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on `bits`-bit integers (32 or 16)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    half = 1 << (bits - 2)
    high = _trunc_shift_right(ab + np.where(ab >= 0, half, 1 - half), bits - 1)
    lowest = -(1 << (bits - 1))
    return np.where((a == b) & (a == lowest), -lowest - 1, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: round(x / 2^exponent), ties away from 0.

    0 <= exponent <= 31 (broadcast with x).

    >>> rounding_divide_by_pot([5, -5, 6, -6, 7, -7], 2).tolist()  # 1.25 1.5 1.75
    [1, -1, 2, -2, 2, -2]
    >>> rounding_divide_by_pot([2, -2], 2).tolist()                # +-0.5
    [1, -1]
    """
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("rounding_divide_by_pot: exponent must be in [0, 31]")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return ((x >> exponent) + (remainder > threshold)).astype(np.int64)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier (double rounding).

    ``x`` is taken as an int32 (wrapped like the C argument), then
    RoundingDivideByPOT(SRDHM(x * 2^max(shift,0), multiplier), max(-shift,0)).
    Arguments broadcast; shift must lie in [-31, 31].

    >>> multiply_by_quantized_multiplier([7, -7], 1 << 30, -1).tolist()  # x/4
    [2, -2]
    >>> multiply_by_quantized_multiplier(3, 1 << 30, 1).item()           # identity
    3
    """
    x = wrap_int32(x)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any((shift < -31) | (shift > 31)):
        raise ValueError("multiply_by_quantized_multiplier: shift must be in [-31, 31]")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrap_int32(x << left), multiplier), right)


def saturating_left_shift(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0."""
    x = np.asarray(x, dtype=np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, wrap_int32(x << exponent)))


# ----------------------------------------------------------------- op params

def preprocess_softmax_scaling(beta: float, input_scale: float,
                               input_integer_bits: int = 5) -> tuple[int, int]:
    """TFLite PreprocessSoftmaxScaling -> (input_multiplier, input_left_shift).

    ``beta * input_scale * 2^(31 - input_integer_bits)`` capped at 2^31 - 1,
    then QuantizeMultiplierGreaterThanOne.

    >>> preprocess_softmax_scaling(1.0, 1 / 16)
    (1073741824, 23)
    """
    real = min(f32(beta) * f32(input_scale) * float(1 << (31 - input_integer_bits)),
               float((1 << 31) - 1))
    return quantize_multiplier_greater_than_one(real)


def calculate_input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite CalculateInputRadius; softmax uses diff_min = -radius.

    >>> calculate_input_radius(5, 23)
    248
    """
    max_input_rescaled = (1.0 * ((1 << integer_bits) - 1) * float(1 << (total_signed_bits - integer_bits))
                          / float(1 << left_shift))
    return int(math.floor(max_input_rescaled))


def add_params(in1_scale: float, in1_zp: int, in2_scale: float, in2_zp: int,
               out_scale: float, out_zp: int, *, act_min: int = -128, act_max: int = 127,
               size: int | None = None, left_shift: int = 20) -> dict:
    """mcf_add_params fields as TFLM's ADD preparation computes them (int8).

    left_shift = 20 (15 for int16: TFLM's 16x8 ADD); twice_max = 2 * max(s1, s2);
    input multipliers s_i / twice_max, output multiplier
    twice_max / (2^20 * s_out), each by QuantizeMultiplierSmallerThanOneExp.
    ``size`` is included only when given.

    >>> p = add_params(0.5, 0, 0.5, 0, 1.0, 0)
    >>> p["input1_multiplier"], p["input1_shift"], p["output_multiplier"], p["output_shift"]
    (1073741824, 0, 1073741824, -19)
    """
    s1, s2, so = f32(in1_scale), f32(in2_scale), f32(out_scale)
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice_max)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice_max)
    mo, sho = quantize_multiplier_smaller_than_one_exp(twice_max / (float(1 << left_shift) * so))
    p = dict(left_shift=left_shift,
             input1_offset=-int(in1_zp), input1_multiplier=m1, input1_shift=sh1,
             input2_offset=-int(in2_zp), input2_multiplier=m2, input2_shift=sh2,
             output_offset=int(out_zp), output_multiplier=mo, output_shift=sho,
             act_min=int(act_min), act_max=int(act_max))
    if size is not None:
        p = {"size": int(size), **p}
    return p


def sub_params(in1_scale: float, in1_zp: int, in2_scale: float, in2_zp: int,
               out_scale: float, out_zp: int, *, act_min: int = -128, act_max: int = 127,
               left_shift: int = 20) -> dict:
    """mcf_sub_params quantization fields as TFLM's SUB preparation
    (sub_common.cc) computes them: ADD's scheme, but the multipliers are
    divided in float32 before QuantizeMultiplierSmallerThanOneExp.

    >>> p = sub_params(0.5, 0, 0.25, 0, 1.0, 0)
    >>> p["input1_multiplier"], p["input2_multiplier"], p["input2_shift"], p["output_shift"]
    (1073741824, 1073741824, -1, -19)
    """
    s1, s2, so = (np.float32(v) for v in (in1_scale, in2_scale, out_scale))
    twice_max = np.float32(2) * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(float(s1 / twice_max))
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(float(s2 / twice_max))
    mo, sho = quantize_multiplier_smaller_than_one_exp(float(twice_max / (np.float32(1 << left_shift) * so)))
    return dict(left_shift=left_shift,
                input1_offset=-int(in1_zp), input1_multiplier=m1, input1_shift=sh1,
                input2_offset=-int(in2_zp), input2_multiplier=m2, input2_shift=sh2,
                output_offset=int(out_zp), output_multiplier=mo, output_shift=sho,
                act_min=int(act_min), act_max=int(act_max))


def mean_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int,
                num_elements: int) -> dict:
    """mcf_mean_params quantization fields, as TFLM's MEAN preparation.

    TFLM (reduce_common.cc PrepareMeanOrSumHelper, the version the
    ``tflite_micro`` package ships) stores QuantizeMultiplier(s_in / s_out);
    the 1/num_elements factor is folded in at evaluation time
    (reference_ops::QuantizedMeanOrSum), which mcf_mean_s8 and the NumPy twin
    both do, see :func:`mean_fold_multiplier`. ``num_elements`` (in_h * in_w)
    is only checked here.

    >>> mean_params(0.5, 3, 0.25, -1, 49)
    {'input_offset': -3, 'output_offset': -1, 'multiplier': 1073741824, 'shift': 2}
    """
    if int(num_elements) <= 0:
        raise ValueError("mean over zero elements")
    multiplier, shift = quantize_multiplier(f32(in_scale) / f32(out_scale))
    if not -31 <= shift <= 31:
        raise ValueError(f"mean: scale ratio {in_scale}/{out_scale} out of range")
    return dict(input_offset=-int(in_zp), output_offset=int(out_zp),
                multiplier=multiplier, shift=shift)


def mean_fold_multiplier(multiplier: int, shift: int, num_elements: int) -> tuple[int, int]:
    """TFLM QuantizedMeanOrSum: fold 1/num_elements into multiplier/shift.

    s = min(floor(log2 n), 32, 31 + shift); multiplier' = trunc(multiplier *
    2^s / n); shift' = shift - s.

    >>> mean_fold_multiplier(1 << 30, 0, 4)
    (1073741824, -2)
    """
    n = int(num_elements)
    s = min(n.bit_length() - 1, 32, 31 + int(shift))
    num = int(multiplier) * (1 << s)
    folded = abs(num) // n * (1 if num >= 0 else -1)
    return int(folded), int(shift) - s


# ------------------------------------------------- gemmlowp fixed-point math

def _srdhm(a, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _rescale_up(x, exponent: int) -> np.ndarray:
    """gemmlowp Rescale to fewer integer bits: SaturatingRoundingMultiplyByPOT<exponent>."""
    return saturating_left_shift(x, exponent) if exponent > 0 else np.asarray(x, dtype=np.int64)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    constant_term = 1895147668      # exp(-1/8), Q0.31
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(_srdhm(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + _srdhm(constant_term, wrap_int32(x + poly)))


# Q0.31 exp(-2^k) for k = -2 .. 4: gemmlowp's barrel shifter constants
_EXP_MULTIPLIERS = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                    (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: input Q(integer_bits).(31 - integer_bits)
    raw values <= 0, output Q0.31 raw values.

    >>> exp_on_negative_values([0], 5).tolist()
    [2147483647]
    """
    a = np.asarray(a, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    remainder = wrap_int32(a_mod - a)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(_rescale_up(a_mod, integer_bits))
    for exponent, multiplier in _EXP_MULTIPLIERS:
        if integer_bits > exponent:
            bit = (remainder & (1 << (fractional_bits + exponent))) != 0
            result = np.where(bit, _srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_q2(a: np.ndarray) -> np.ndarray:
    """x ~= 1 / half_denominator in Q2.29, where half_denominator = (a + 1) / 2
    (gemmlowp's Newton-Raphson division shared by the two functions below)."""
    s = np.asarray(a, dtype=np.int64) + INT32_MAX  # RoundingHalfSum(a, 1.0)
    v = s + np.where(s >= 0, 1, -1)
    half_denominator = np.where(v >= 0, v // 2, -((-v) // 2))
    x = wrap_int32(1515870810 + _srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap_int32((1 << 29) - _srdhm(half_denominator, x))
        x = wrap_int32(x + saturating_left_shift(_srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out."""
    return saturating_left_shift(_newton_reciprocal_q2(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1, Q0.31 in and out."""
    return saturating_left_shift(wrap_int32(_newton_reciprocal_q2(a) - (1 << 29)), 2)


def logistic_fixed(a, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic: Q(integer_bits) raw in, Q0.31 raw out."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    abs_input = np.where(positive, a, wrap_int32(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_int32(-abs_input), integer_bits))
    if_negative = wrap_int32(INT32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh_fixed(a, integer_bits: int) -> np.ndarray:
    """gemmlowp tanh: Q(integer_bits) raw in, Q0.31 raw out."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, wrap_int32(-a))
    # ExactMulByPot<1>: the same raw value read with one more integer bit
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap_int32(-t), t))


# ------------------------------------------------ tables of int8 -> int8 ops
#
# An int8 elementwise op is a function of 256 input values: mcf_lut_s8 applies
# a table computed here with exactly TFLM's integer arithmetic for that op.
# Index i holds the output for the input value i - 128.

INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


def _to_int8(v) -> np.ndarray:
    return np.clip(np.asarray(v, dtype=np.int64), -128, 127).astype(np.int8)


def f32div(a: float, b: float) -> float:
    """A float32 quotient as TFLM computes ``float / float`` before widening to double."""
    return float(np.float32(a) / np.float32(b))


def _int16_srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    return _srdhm_bits(a, b, 16)


def _int16_saturating_left_shift(x, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64) * (1 << amount), -32768, 32767)


def _downscale_to_int16(multiplier: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier."""
    if multiplier >= INT32_MAX - (1 << 15):
        return 32767
    return (multiplier + (1 << 15)) >> 16


def hard_swish_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """TFLM HARD_SWISH int8 (HardSwishPrepare + reference_ops::HardSwish):
    the input on a "hires" scale in int16, a relu-ish multiplier in [0, 1]
    from a saturating rescale of [-3, 3], their product, a final shift."""
    hires = float(np.float32(1.0 / 128.0) * np.float32(in_scale))
    out_mult, out_exp = quantize_multiplier(f32div(hires, out_scale))
    if out_exp > 0:
        raise ValueError("hard_swish: output scale too small for the input scale (TFLM requires "
                         "input_scale / 128 <= output_scale)")
    relu_mult, relu_exp = quantize_multiplier(f32div(hires, float(np.float32(3.0) / np.float32(32768.0))))
    if relu_exp > 31:  # an int16 value shifted left that far saturates whatever it is: no usable scale
        raise ValueError(f"hard_swish: input scale {in_scale} is too large (the relu-ish multiplier needs a "
                         f"left shift of {relu_exp}, TFLM's int16 arithmetic at most 31)")
    out_m16, relu_m16 = _downscale_to_int16(out_mult), _downscale_to_int16(relu_mult)
    x = INT8_VALUES - int(in_zp)
    hires_value = x * 128
    preshift = _int16_srdhm(hires_value, out_m16)
    reluish = hires_value
    if relu_exp > 0:
        reluish = _int16_saturating_left_shift(reluish, relu_exp - 1)
    reluish = _int16_srdhm(reluish, relu_m16)
    if relu_exp > 0:
        reluish = _int16_saturating_left_shift(reluish, 1)
    if relu_exp < 0:
        reluish = rounding_divide_by_pot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    prod = reluish * preshift
    prod = np.where((reluish == -32768) & (preshift == -32768), 32767, _trunc_shift_right(prod, 15))
    out = rounding_divide_by_pot(prod, -out_exp) + int(out_zp)
    return _to_int8(out)


def _sigmoid_like_params(in_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) of TFLM's int8
    LOGISTIC and TANH preparation (4 integer bits)."""
    real = float(in_scale) * float(1 << 27)
    q, shift = math.frexp(real)
    multiplier = _round_half_away(q * (1 << 31))
    if multiplier > INT32_MAX:
        raise ValueError("logistic/tanh: input multiplier out of range")
    return multiplier, shift, calculate_input_radius(4, shift, 31)


def logistic_table(in_scale: float, in_zp: int) -> np.ndarray:
    """TFLM LOGISTIC int8 (reference_integer_ops::Logistic); the output is
    scale 1/256, zero point -128."""
    multiplier, shift, radius = _sigmoid_like_params(in_scale)
    x = INT8_VALUES - int(in_zp)
    q4 = multiply_by_quantized_multiplier(x, multiplier, shift)
    q23 = rounding_divide_by_pot(logistic_fixed(q4, 4), 23) - 128
    out = np.where(x <= -radius, -128, np.where(x >= radius, 127, q23))
    return _to_int8(out)


def tanh_table(in_scale: float, in_zp: int) -> np.ndarray:
    """TFLM TANH int8 (reference_integer_ops::Tanh); the output is scale
    1/128, zero point 0."""
    multiplier, shift, radius = _sigmoid_like_params(in_scale)
    x = INT8_VALUES - int(in_zp)
    q4 = multiply_by_quantized_multiplier(x, multiplier, shift)
    q24 = rounding_divide_by_pot(tanh_fixed(q4, 4), 24)
    out = np.where(x <= -radius, -128, np.where(x >= radius, 127, q24))
    return _to_int8(out)


def leaky_relu_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int, alpha: float) -> np.ndarray:
    """TFLM LEAKY_RELU int8: one multiplier for x >= 0 (identity) and one for
    x < 0 (alpha), the scale ratios computed in double from the float32
    scales and alpha (as the ``tflite_micro`` interpreter does)."""
    s_in, s_out, alpha = f32(in_scale), f32(out_scale), f32(alpha)
    alpha_real = s_in * alpha / s_out
    m_alpha, s_alpha = quantize_multiplier(abs(alpha_real))
    m_id, s_id = quantize_multiplier(s_in / s_out)
    x = INT8_VALUES - int(in_zp)
    neg = multiply_by_quantized_multiplier(x, m_alpha, s_alpha)
    neg = -neg if alpha_real < 0 else neg
    out = int(out_zp) + np.where(x >= 0, multiply_by_quantized_multiplier(x, m_id, s_id), neg)
    return _to_int8(out)


def requantize_table(table: np.ndarray, from_scale: float, from_zp: int, to_scale: float, to_zp: int) -> np.ndarray:
    """A table's outputs requantized (TFLM QUANTIZE int8 -> int8) to other parameters."""
    m, s = quantize_multiplier(float(from_scale) / float(to_scale))
    v = multiply_by_quantized_multiplier(np.asarray(table, np.int64) - int(from_zp), m, s) + int(to_zp)
    return _to_int8(v)


def float_function_table(fn, in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """For an op TFLite has no int8 kernel for: the float function on the
    dequantized input, quantized with round half away from zero."""
    x = (INT8_VALUES - int(in_zp)).astype(np.float64) * float(in_scale)
    y = np.asarray(fn(x), dtype=np.float64) / float(out_scale)
    return _to_int8(np.sign(y) * np.floor(np.abs(y) + 0.5) + int(out_zp))
