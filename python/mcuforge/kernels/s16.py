"""NumPy twins of the int16 (TFLite 16x8) kernels (runtime/src/mcf_s16_*.c).

16x8 models quantize activations to int16, symmetric (zero point 0), weights
to int8 (symmetric, per channel) and biases to int64. The arithmetic is
TFLM's 16x8 reference kernels:

* conv2d, depthwise conv2d, fully connected and transpose conv
  (reference_integer_ops::ConvPerChannel<int64_t> and kin) accumulate
  ``filter * input`` in int64, add the int64 bias and requantize with the
  int64 MultiplyByQuantizedMultiplier: the Q31 multiplier reduced to Q15
  (``(m + 2^15) >> 16``, capped at 0x7FFF), one rounding right shift by
  ``15 - shift``; then the int16 clamp (no output offset: zero point 0);
* add and sub are int8's arithmetic with a left shift of 15 and the int16
  clamp (TFLM AddGeneralParamScale / SubElementwise, int16);
* leaky ReLU is int8's (an identity and an alpha multiplier, 32-bit
  MultiplyByQuantizedMultiplier) computed per value, not by a table;
* QUANTIZE between int8 and int16 (and int16 -> int16) is TFLM's Requantize:
  ``MultiplyByQuantizedMultiplier(x - zp_in, m, s) + zp_out``, clamped to the
  output type;
* pad, strided slice, concat are copies.

Each twin takes ``(params, *inputs)`` with the C struct's field names and
returns the flat output (int16, or int8 for requantize_s16_s8), equal to the
C kernel byte for byte; it raises ValueError where the C kernel returns
MCF_ERR_ARG.
"""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import padded, positive, window_slices
from .transpose_conv import scatter_sum

INT16_MIN, INT16_MAX = -32768, 32767
ACC_LIMIT = 1 << 47  # TFLM's int64 requantization assumes |acc| < 2^47


def as_int16(x, size: int | None = None, name: str = "input") -> np.ndarray:
    """Flat int16 copy of an input array; checks the range and element count."""
    a = np.asarray(x)
    if a.dtype != np.int16:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < INT16_MIN or a.max() > INT16_MAX):
            raise ValueError(f"{name} must be int16")
        a = a.astype(np.int16)
    a = a.reshape(-1)
    if size is not None and a.size != size:
        raise ValueError(f"{name} has {a.size} elements, expected {size}")
    return a


def check_act16(p: dict) -> tuple[int, int]:
    lo, hi = int(p["act_min"]), int(p["act_max"])
    if lo < INT16_MIN or hi > INT16_MAX or lo > hi:
        raise ValueError(f"bad activation range [{lo}, {hi}]")
    return lo, hi


def multiply_by_quantized_multiplier_64(x, multiplier, shift) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier(int64_t x, ...) (the 16x8 requantization).

    >>> multiply_by_quantized_multiplier_64([1000, -1000, 3], 1 << 30, 0).tolist()  # x / 2
    [500, -500, 2]
    >>> multiply_by_quantized_multiplier_64([7], 0x7FFFFFFF, -1).tolist()  # reduced to 0x7FFF: 7 * 32767 / 2^16
    [3]
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if np.any(multiplier < 0) or np.any((shift < -31) | (shift > 7)):
        raise ValueError("int64 requantization needs a multiplier >= 0 and a shift in [-31, 7]")
    if np.any((x < -ACC_LIMIT) | (x >= ACC_LIMIT)):
        raise ValueError("accumulator outside [-2^47, 2^47)")
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - shift
    return fp.wrap_int32((x * reduced + (np.int64(1) << (total - 1))) >> total)


def _quant_arrays(p: dict, channels: int) -> tuple[np.ndarray, np.ndarray]:
    mult = np.asarray(p["multiplier"], dtype=np.int64).reshape(-1)
    shift = np.asarray(p["shift"], dtype=np.int64).reshape(-1)
    n = channels if int(p.get("per_channel", 0)) else 1
    if mult.size < n or shift.size < n:
        raise ValueError(f"need {n} multipliers/shifts, got {mult.size}/{shift.size}")
    return np.broadcast_to(mult[:n], (channels,)), np.broadcast_to(shift[:n], (channels,))


def requantize_acc64(acc: np.ndarray, p: dict, channels: int) -> np.ndarray:
    """int64 bias, int64 requantization per channel (last axis), int16 clamp."""
    lo, hi = check_act16(p)
    mult, shift = _quant_arrays(p, channels)
    acc = np.asarray(acc, dtype=np.int64)
    if p.get("bias") is not None:
        bias = np.asarray(p["bias"], dtype=np.int64).reshape(-1)
        if bias.size < channels:
            raise ValueError(f"bias has {bias.size} entries, expected {channels}")
        acc = acc + bias[:channels]
    out = multiply_by_quantized_multiplier_64(acc, mult, shift)
    return np.clip(out, lo, hi).astype(np.int16)


# ---- convolutions ------------------------------------------------------------------

def conv2d_s16(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
             "stride_h", "stride_w", "dilation_h", "dilation_w")
    in_h, in_w, in_c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    out_h, out_w, out_c = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    k_h, k_w = int(p["k_h"]), int(p["k_w"])
    dh, dw = int(p["dilation_h"]), int(p["dilation_w"])
    filt = np.asarray(p["filter"], dtype=np.int8).reshape(out_c, k_h, k_w, in_c).astype(np.float64)
    # float64 BLAS is exact: every partial sum is an integer below 2^47 < 2^53
    xo = as_int16(x, in_h * in_w * in_c).reshape(in_h, in_w, in_c).astype(np.float64)
    rows = (out_h - 1) * int(p["stride_h"]) + (k_h - 1) * dh + 1
    cols = (out_w - 1) * int(p["stride_w"]) + (k_w - 1) * dw + 1
    xp, row0, col0 = padded(xo, int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0.0)
    acc = np.zeros((out_h * out_w, out_c), dtype=np.float64)
    for ky in range(k_h):
        for kx in range(k_w):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w, dh, dw)
            acc += xp[rs, cs, :].reshape(-1, in_c) @ filt[:, ky, kx, :].T
    return requantize_acc64(acc.astype(np.int64), p, out_c).reshape(-1)


def depthwise_conv2d_s16(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_h", "in_w", "in_c", "out_h", "out_w", "depth_multiplier", "k_h", "k_w",
             "stride_h", "stride_w", "dilation_h", "dilation_w")
    if int(p["out_c"]) != int(p["in_c"]) * int(p["depth_multiplier"]):
        raise ValueError("out_c must equal in_c * depth_multiplier")
    in_h, in_w, in_c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    out_h, out_w, out_c = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    k_h, k_w = int(p["k_h"]), int(p["k_w"])
    dh, dw = int(p["dilation_h"]), int(p["dilation_w"])
    mult = int(p["depth_multiplier"])
    filt = np.asarray(p["filter"], dtype=np.int8).reshape(k_h, k_w, out_c).astype(np.int64)
    xo = as_int16(x, in_h * in_w * in_c).reshape(in_h, in_w, in_c).astype(np.int64)
    if mult > 1:
        xo = np.repeat(xo, mult, axis=2)
    rows = (out_h - 1) * int(p["stride_h"]) + (k_h - 1) * dh + 1
    cols = (out_w - 1) * int(p["stride_w"]) + (k_w - 1) * dw + 1
    xp, row0, col0 = padded(xo, int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0)
    acc = np.zeros((out_h, out_w, out_c), dtype=np.int64)
    for ky in range(k_h):
        for kx in range(k_w):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w, dh, dw)
            acc += xp[rs, cs, :] * filt[ky, kx]
    return requantize_acc64(acc, p, out_c).reshape(-1)


def fully_connected_s16(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "rows", "in_features", "out_features")
    rows, k, n = int(p["rows"]), int(p["in_features"]), int(p["out_features"])
    xo = as_int16(x, rows * k).reshape(rows, k).astype(np.float64)
    w = np.asarray(p["filter"], dtype=np.int8).reshape(n, k).astype(np.float64)
    acc = (xo @ w.T).astype(np.int64)  # exact: integer partial sums < 2^53
    return requantize_acc64(acc, p, n).reshape(-1)


def transpose_conv_s16(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_c", "out_c", "k_h", "k_w", "stride_h", "stride_w")
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    oh, ow, oc = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    kh, kw = int(p["k_h"]), int(p["k_w"])
    if min(h, w, oh, ow) < 0:
        raise ValueError("negative size")
    xi = as_int16(x, h * w * c).reshape(h, w, c).astype(np.int64)
    filt = np.asarray(p["filter"], np.int64).reshape(oc, kh, kw, c)
    acc = scatter_sum(xi, filt, (int(p["stride_h"]), int(p["stride_w"])),
                      (int(p["pad_top"]), int(p["pad_left"])), (oh, ow))
    return requantize_acc64(acc, p, oc).reshape(-1)


# ---- elementwise -------------------------------------------------------------------

def _operands16(p: dict, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as int64 arrays of the output's size, broadcast as the C walks them."""
    size = int(p["size"])
    if size < 0:
        raise ValueError("negative size")
    if not int(p["broadcast"]):
        return as_int16(a, size, "input1").astype(np.int64), as_int16(b, size, "input2").astype(np.int64)
    shape = [int(v) for v in p["out_shape"]]
    s1 = [int(v) for v in p["input1_stride"]]
    s2 = [int(v) for v in p["input2_stride"]]
    if min(shape + s1 + s2) < 0 or int(np.prod(shape)) != size:
        raise ValueError("bad broadcast shape or strides")
    idx = np.indices(shape).reshape(4, -1)
    a, b = as_int16(a, name="input1"), as_int16(b, name="input2")
    i1, i2 = np.asarray(s1) @ idx, np.asarray(s2) @ idx
    if size and (i1.max() >= a.size or i2.max() >= b.size):
        raise ValueError("broadcast strides read past an input")
    return a[i1].astype(np.int64), b[i2].astype(np.int64)


def _scale_down(x, multiplier, shift) -> np.ndarray:
    # MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0)
    return fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def _add_sub(p: dict, a, b, sign: int) -> np.ndarray:
    lo, hi = check_act16(p)
    left = int(p["left_shift"])
    shifts = [int(p[k]) for k in ("input1_shift", "input2_shift", "output_shift")]
    if not 0 <= left <= 30 or any(not -31 <= s <= 0 for s in shifts):
        raise ValueError("bad add/sub parameters")
    x, y = _operands16(p, a, b)
    sa = _scale_down(fp.wrap_int32((x + int(p["input1_offset"])) << left), int(p["input1_multiplier"]), shifts[0])
    sb = _scale_down(fp.wrap_int32((y + int(p["input2_offset"])) << left), int(p["input2_multiplier"]), shifts[1])
    out = _scale_down(fp.wrap_int32(sa + sign * sb), int(p["output_multiplier"]), shifts[2]) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(np.int16)


def add_s16(params: dict, a, b) -> np.ndarray:
    return _add_sub(params, a, b, 1)


def sub_s16(params: dict, a, b) -> np.ndarray:
    return _add_sub(params, a, b, -1)


def mul_s16(params: dict, a, b) -> np.ndarray:
    """TFLM reference_integer_ops::MulElementwise / BroadcastMul6DSlow, int16."""
    p = params
    lo, hi = check_act16(p)
    shift = int(p["shift"])
    if not -31 <= shift <= 31:
        raise ValueError("shift out of [-31, 31]")
    x, y = _operands16(p, a, b)
    prod = (x + int(p["input1_offset"])) * (y + int(p["input2_offset"]))
    out = int(p["output_offset"]) + fp.multiply_by_quantized_multiplier(prod, int(p["multiplier"]), shift)
    return np.clip(out, lo, hi).astype(np.int16)


def leaky_relu_s16(params: dict, x) -> np.ndarray:
    p = params
    size = int(p["size"])
    for k in ("shift_identity", "shift_alpha"):
        if not -31 <= int(p[k]) <= 31:
            raise ValueError("shift out of [-31, 31]")
    v = as_int16(x, size).astype(np.int64) - int(p["input_zero_point"])
    pos = fp.multiply_by_quantized_multiplier(v, int(p["multiplier_identity"]), int(p["shift_identity"]))
    neg = fp.multiply_by_quantized_multiplier(v, int(p["multiplier_alpha"]), int(p["shift_alpha"]))
    out = int(p["output_zero_point"]) + np.where(v >= 0, pos, neg)
    return np.clip(out, INT16_MIN, INT16_MAX).astype(np.int16)


# sigmoid(i / 24), i = 0..255, unsigned Q0.16: the table TFLM's 16-bit LOGISTIC and TANH interpolate
# in, measured from the tflite_micro interpreter by scripts/sigmoid_table_s16.py (tests/test_int16.py
# measures it again); runtime/src/mcf_s16_sigmoid.c holds the same values.
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], dtype=np.int64)


def _lut_input(p: dict, x) -> np.ndarray:
    mult, shift = int(p["input_multiplier"]), int(p["input_left_shift"])
    if mult < 0 or not 0 <= shift <= 31:
        raise ValueError("bad logistic/tanh input scaling")
    if mult == 0:  # power-of-two input scale
        mult, shift = 3 << shift, 0
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    return (as_int16(x, int(p["size"])).astype(np.int64) * mult + rnd) >> shift


def logistic_s16(params: dict, x) -> np.ndarray:
    """TFLM reference_integer_ops::Logistic (int16): |x| rescaled to 1/(3 * 4096)
    per unit, linear interpolation in the sigmoid table (9 fraction bits),
    symmetry for x < 0; output scale 2^-15."""
    v = _lut_input(params, x)
    a = np.abs(v)
    uh = a >> 9
    ut = a & 0x1FF
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    result = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + ut * (ub - ua))
    result = np.where(v >= 0, result + (1 << 9), (1 << 25) - result + (1 << 9) - 1)
    return (result >> 10).astype(np.int16)


def tanh_s16(params: dict, x) -> np.ndarray:
    """TFLM reference_integer_ops::Tanh (int16): tanh(x) = 2 sigmoid(2x) - 1 on
    the same table (8 fraction bits); output scale 2^-15."""
    v = _lut_input(params, x)
    a = np.abs(v)
    uh = a >> 8
    ut = a & 0xFF
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    result = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + ut * (ub - ua))
    result = np.where(v >= 0, result - (1 << 23) + (1 << 7), -result + (1 << 23) + (1 << 7) - 1)
    return np.clip(result >> 8, INT16_MIN, INT16_MAX).astype(np.int16)


def int16_lut(fn, input_min: float, input_max: float) -> np.ndarray:
    """TFLM gen_lut<float, int16_t, int16_t> (output range [-1, 1]): 512 samples
    of fn over [input_min, input_max] in float32, each biased by half the
    interpolation error at its midpoint, plus fn(input_max); 513 int16 values."""
    f = np.float32
    steps = 512
    lo, hi = f(input_min), f(input_max)
    step = f((hi - lo) / f(steps))
    half = f(step / f(2))
    inv = f(f(65536) / f(f(1) - f(-1)))
    i = np.arange(steps, dtype=np.float32)

    def rnd(v):  # TfLiteRound: half away from zero
        v = np.asarray(v, np.float32)
        return (np.sign(v) * np.floor(np.abs(v) + f(0.5))).astype(np.float32)

    x0 = (lo + (i * step).astype(np.float32)).astype(np.float32)
    val = fn(x0)
    val_mid = fn((x0 + half).astype(np.float32))
    val_next = fn((lo + ((i + f(1)) * step).astype(np.float32)).astype(np.float32))
    sample = rnd(val * inv)
    interp = rnd(((val_next * inv).astype(np.float32) + sample) / f(2))
    mid = rnd(val_mid * inv)
    bias = rnd((interp - mid) / f(2))
    lut = np.clip(sample - bias, -32768, 32767)
    last = np.clip(rnd(fn(np.array([hi], np.float32)) * inv), -32768, 32767)
    return np.concatenate([lut, last]).astype(np.int16)


def _expf(v) -> np.ndarray:
    """exp in float32, correctly rounded (from double)."""
    return np.exp(np.asarray(v, np.float64)).astype(np.float32)


def _one_over_one_plus_x(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return (np.float32(1) / (np.float32(1) + v)).astype(np.float32)


EXP_LUT = int16_lut(_expf, -10.0, 0.0)
ONE_OVER_ONE_PLUS_X_LUT = int16_lut(_one_over_one_plus_x, 0.0, 1.0)


def lut_lookup(value, lut) -> np.ndarray:
    """TFLM LUTLookup for int16: base lut[256 + (v >> 7)] plus the slope times
    the 7 low bits, rounded."""
    v = np.asarray(value, np.int64)
    lut = np.asarray(lut, np.int64)
    index = 256 + (v >> 7)
    base = lut[index]
    slope = lut[index + 1] - base
    return base + ((slope * (v & 0x7F) + 64) >> 7)


def softmax_s16(params: dict, x) -> np.ndarray:
    """TFLM reference_ops::SoftmaxInt16: exp(x - max) from the exp table
    ([-10, 0] over the int16 range), the reciprocal of the sum from the
    1 / (1 + x) table, output scale 2^-15."""
    p = params
    rows, cols = int(p["rows"]), int(p["cols"])
    shift = int(p["input_left_shift"])
    if rows < 0 or cols <= 0 or not -31 <= shift <= 31:
        raise ValueError("bad softmax parameters")
    exp_lut = np.asarray(p["exp_lut"], np.int64).reshape(-1)
    recip_lut = np.asarray(p["one_over_one_plus_x_lut"], np.int64).reshape(-1)
    if exp_lut.size != 513 or recip_lut.size != 513:
        raise ValueError("softmax tables must have 513 entries")
    xi = as_int16(x, rows * cols).reshape(rows, cols).astype(np.int64)
    diff = xi - xi.max(axis=1, keepdims=True)
    scaled = fp.multiply_by_quantized_multiplier(diff, int(p["input_multiplier"]), shift)
    e = lut_lookup(np.clip(scaled + 32767, -32768, 32767), exp_lut)
    e = e.astype(np.int16).astype(np.int64)
    total = e.sum(axis=1)
    if np.any(total <= 0) or np.any(total >= 1 << 31):
        raise ValueError("softmax sum out of range")
    clz = np.array([32 - int(t).bit_length() for t in total], np.int64)
    shifted = ((total << (clz - 1)) + (1 << 13)) >> 14
    recip = lut_lookup(np.clip(shifted - ((1 << 15) + (1 << 16)), -32768, 32767), recip_lut)
    recip = recip.astype(np.int16).astype(np.int64)
    right = (31 - clz)[:, None]
    out = (e * recip[:, None] + (np.int64(1) << (right - 1))) >> right
    return np.clip(out, 0, 32767).astype(np.int16).reshape(-1)


def _requantize(p: dict, x: np.ndarray, lo: int, hi: int, dtype) -> np.ndarray:
    shift = int(p["shift"])
    if not -31 <= shift <= 31:
        raise ValueError("shift out of [-31, 31]")
    v = x.astype(np.int64) + int(p["input_offset"])
    out = fp.multiply_by_quantized_multiplier(v, int(p["multiplier"]), shift) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(dtype)


def requantize_s16(params: dict, x) -> np.ndarray:
    """int16 -> int16 (TFLM QUANTIZE int16 -> int16)."""
    return _requantize(params, as_int16(x, int(params["size"])), INT16_MIN, INT16_MAX, np.int16)


def requantize_s8_s16(params: dict, x) -> np.ndarray:
    """int8 -> int16 (TFLM QUANTIZE int8 -> int16)."""
    size = int(params["size"])
    xi = np.asarray(x).reshape(-1)
    if xi.size != size or (xi.size and (xi.min() < -128 or xi.max() > 127)):
        raise ValueError(f"input must be {size} int8 values")
    return _requantize(params, xi, INT16_MIN, INT16_MAX, np.int16)


def requantize_s16_s8(params: dict, x) -> np.ndarray:
    """int16 -> int8 (TFLM QUANTIZE int16 -> int8)."""
    return _requantize(params, as_int16(x, int(params["size"])), -128, 127, np.int8)


# ---- data movement ---------------------------------------------------------------

def pad_s16(params: dict, x) -> np.ndarray:
    p = params
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    pads = [int(p[k]) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right", "pad_front", "pad_back")]
    value = int(p["pad_value"])
    if min(h, w, c) < 0 or min(pads) < 0 or not INT16_MIN <= value <= INT16_MAX:
        raise ValueError("bad pad parameters")
    xi = as_int16(x, h * w * c).reshape(h, w, c)
    out = np.pad(xi, ((pads[0], pads[1]), (pads[2], pads[3]), (pads[4], pads[5])), constant_values=value)
    return out.reshape(-1)


def strided_slice_s16(params: dict, x) -> np.ndarray:
    shape = [int(v) for v in params["in_shape"]]
    begin = [int(v) for v in params["begin"]]
    stride = [int(v) for v in params["stride"]]
    out = [int(v) for v in params["out_shape"]]
    if min(shape + out) < 0:
        raise ValueError("bad strided slice parameters")
    index = []
    for d in range(4):
        idx = begin[d] + stride[d] * np.arange(out[d])
        if out[d] and (idx.min() < 0 or idx.max() >= shape[d]):
            raise ValueError("strided slice reads outside the input")
        index.append(idx)
    xi = as_int16(x, int(np.prod(shape))).reshape(shape)
    return np.ascontiguousarray(xi[np.ix_(*index)]).reshape(-1)


def concat_s16(params: dict, inputs) -> np.ndarray:
    """Copies (TFLM CONCATENATION int16 requires equal quantization)."""
    p = params
    n, outer = int(p["num_inputs"]), int(p["outer"])
    inner = [int(v) for v in np.asarray(p["inner"]).reshape(-1)[:n]]
    if n <= 0 or outer < 0 or len(inputs) < n or any(v < 0 for v in inner):
        raise ValueError("bad concat parameters")
    parts = [as_int16(inputs[i], outer * inner[i], f"input {i}").reshape(outer, inner[i]) for i in range(n)]
    return np.concatenate(parts, axis=1).reshape(-1)


def max_pool_s16(params: dict, x) -> np.ndarray:
    """TFLM MaxPool int16: the largest value of the taps inside the input, clamped."""
    p = params
    positive(p, "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w")
    lo, hi = check_act16(p)
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["channels"])
    oh, ow, kh, kw = int(p["out_h"]), int(p["out_w"]), int(p["k_h"]), int(p["k_w"])
    rows = (oh - 1) * int(p["stride_h"]) + kh
    cols = (ow - 1) * int(p["stride_w"]) + kw
    xi = as_int16(x, h * w * c).reshape(h, w, c).astype(np.int64)
    xp, row0, col0 = padded(xi, int(p["pad_top"]), int(p["pad_left"]), rows, cols, INT16_MIN - 1)
    best = np.full((oh, ow, c), INT16_MIN - 1, np.int64)
    for ky in range(kh):
        for kx in range(kw):
            rs, cs = window_slices(row0, col0, ky, kx, p, oh, ow)
            best = np.maximum(best, xp[rs, cs, :])
    return np.clip(best, lo, hi).astype(np.int16).reshape(-1)


def avg_pool_s16(params: dict, x) -> np.ndarray:
    """TFLM reference_integer_ops::AveragePool, int16: the sum of the taps
    inside the input, divided by their count rounding half away from zero, clamped."""
    p = params
    positive(p, "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w")
    lo, hi = check_act16(p)
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["channels"])
    oh, ow, kh, kw = int(p["out_h"]), int(p["out_w"]), int(p["k_h"]), int(p["k_w"])
    rows = (oh - 1) * int(p["stride_h"]) + kh
    cols = (ow - 1) * int(p["stride_w"]) + kw
    xi = as_int16(x, h * w * c).reshape(h, w, c).astype(np.int64)
    xp, row0, col0 = padded(xi, int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0)
    inside, _, _ = padded(np.ones((h, w, 1), np.int64), int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0)
    acc = np.zeros((oh, ow, c), np.int64)
    count = np.zeros((oh, ow, 1), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            rs, cs = window_slices(row0, col0, ky, kx, p, oh, ow)
            acc += xp[rs, cs, :]
            count += inside[rs, cs, :]
    if np.any(count == 0):
        raise ValueError("a pooling window lies entirely in the padding")
    half = count // 2
    acc = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
    return np.clip(acc, lo, hi).astype(np.int16).reshape(-1)


KERNELS_S16 = {
    "conv2d_s16": conv2d_s16,
    "depthwise_conv2d_s16": depthwise_conv2d_s16,
    "fully_connected_s16": fully_connected_s16,
    "transpose_conv_s16": transpose_conv_s16,
    "add_s16": add_s16,
    "sub_s16": sub_s16,
    "leaky_relu_s16": leaky_relu_s16,
    "requantize_s16": requantize_s16,
    "requantize_s8_s16": requantize_s8_s16,
    "requantize_s16_s8": requantize_s16_s8,
    "pad_s16": pad_s16,
    "strided_slice_s16": strided_slice_s16,
    "concat_s16": concat_s16,
    "max_pool_s16": max_pool_s16,
    "avg_pool_s16": avg_pool_s16,
    "mul_s16": mul_s16,
    "logistic_s16": logistic_s16,
    "tanh_s16": tanh_s16,
    "softmax_s16": softmax_s16,
}

_MBQM = "mcf_fixedpoint.c"
RUNTIME_SOURCES_S16 = {
    "conv2d_s16": ["mcf_s16_conv.c", _MBQM],
    "depthwise_conv2d_s16": ["mcf_s16_conv.c", _MBQM],
    "fully_connected_s16": ["mcf_s16_conv.c", _MBQM],
    "transpose_conv_s16": ["mcf_s16_conv.c", _MBQM],
    "add_s16": ["mcf_s16_elementwise.c", _MBQM],
    "sub_s16": ["mcf_s16_elementwise.c", _MBQM],
    "leaky_relu_s16": ["mcf_s16_elementwise.c", _MBQM],
    "requantize_s16": ["mcf_s16_elementwise.c", _MBQM],
    "requantize_s8_s16": ["mcf_s16_elementwise.c", _MBQM],
    "requantize_s16_s8": ["mcf_s16_elementwise.c", _MBQM],
    "pad_s16": ["mcf_s16_data.c"],
    "strided_slice_s16": ["mcf_s16_data.c"],
    "concat_s16": ["mcf_s16_data.c"],
    "max_pool_s16": ["mcf_s16_data.c"],
    "avg_pool_s16": ["mcf_s16_data.c"],
    "mul_s16": ["mcf_s16_elementwise.c", _MBQM],
    "logistic_s16": ["mcf_s16_sigmoid.c"],
    "tanh_s16": ["mcf_s16_sigmoid.c"],
    "softmax_s16": ["mcf_s16_softmax.c", _MBQM],
}
