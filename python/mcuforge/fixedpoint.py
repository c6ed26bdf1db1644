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
    "add_params", "mean_params", "mean_fold_multiplier",
]


def _f32(x: float) -> float:
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
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_shift_right(ab + nudge, 31)
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


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
    real = min(_f32(beta) * _f32(input_scale) * float(1 << (31 - input_integer_bits)),
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
               size: int | None = None) -> dict:
    """mcf_add_params fields as TFLM's ADD preparation computes them (int8).

    left_shift = 20; twice_max = 2 * max(s1, s2);
    input multipliers s_i / twice_max, output multiplier
    twice_max / (2^20 * s_out), each by QuantizeMultiplierSmallerThanOneExp.
    ``size`` is included only when given.

    >>> p = add_params(0.5, 0, 0.5, 0, 1.0, 0)
    >>> p["input1_multiplier"], p["input1_shift"], p["output_multiplier"], p["output_shift"]
    (1073741824, 0, 1073741824, -19)
    """
    s1, s2, so = _f32(in1_scale), _f32(in2_scale), _f32(out_scale)
    left_shift = 20
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
    multiplier, shift = quantize_multiplier(_f32(in_scale) / _f32(out_scale))
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
