"""NumPy twins of the table and binary elementwise kernels: mcf_lut_s8
(mcf_lut.c), mcf_mul_s8 (mcf_mul.c), mcf_sub_s8 (mcf_sub.c) and
mcf_maximum_s8 / mcf_minimum_s8 (mcf_maximum_minimum.c), with the broadcast
walk of mcf_broadcast.c."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8, check_act


def lut_s8(params: dict, x) -> np.ndarray:
    size = int(params["size"])
    table = params.get("table")
    if size < 0 or table is None:
        raise ValueError("bad lut parameters")
    table = np.asarray(table).reshape(-1)
    if table.size != 256:
        raise ValueError("the table must have 256 entries")
    xi = as_int8(x, size).astype(np.int64)
    return table.astype(np.int8)[xi + 128]


def _operands(p: dict, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as int64 arrays of the output's size, broadcast as the C walks them."""
    size = int(p["size"])
    if size < 0:
        raise ValueError("negative size")
    if not int(p["broadcast"]):
        return as_int8(a, size, "input1").astype(np.int64), as_int8(b, size, "input2").astype(np.int64)
    shape = [int(v) for v in p["out_shape"]]
    s1 = [int(v) for v in p["input1_stride"]]
    s2 = [int(v) for v in p["input2_stride"]]
    if min(shape + s1 + s2) < 0 or int(np.prod(shape)) != size:
        raise ValueError("bad broadcast shape or strides")
    idx = np.indices(shape).reshape(4, -1)
    a, b = as_int8(a, name="input1"), as_int8(b, name="input2")
    i1, i2 = np.asarray(s1) @ idx, np.asarray(s2) @ idx
    if size and (i1.max() >= a.size or i2.max() >= b.size):
        raise ValueError("broadcast strides read past an input")
    return a[i1].astype(np.int64), b[i2].astype(np.int64)


broadcast_operands = _operands  # public name for the other twins of the walk


def mul_s8(params: dict, a, b) -> np.ndarray:
    p = params
    lo, hi = check_act(p)
    shift = int(p["shift"])
    if not -31 <= shift <= 31:
        raise ValueError("shift out of [-31, 31]")
    x, y = _operands(p, a, b)
    prod = (x + int(p["input1_offset"])) * (y + int(p["input2_offset"]))
    out = int(p["output_offset"]) + fp.multiply_by_quantized_multiplier(prod, int(p["multiplier"]), shift)
    return np.clip(out, lo, hi).astype(np.int8)


def _scale_down(x, multiplier, shift) -> np.ndarray:
    return fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def sub_s8(params: dict, a, b) -> np.ndarray:
    p = params
    lo, hi = check_act(p)
    left = int(p["left_shift"])
    shifts = [int(p[k]) for k in ("input1_shift", "input2_shift", "output_shift")]
    if not 0 <= left <= 30 or any(not -31 <= s <= 0 for s in shifts):
        raise ValueError("bad sub parameters")
    x, y = _operands(p, a, b)
    sa = _scale_down(fp.wrap_int32((x + int(p["input1_offset"])) << left), int(p["input1_multiplier"]), shifts[0])
    sb = _scale_down(fp.wrap_int32((y + int(p["input2_offset"])) << left), int(p["input2_multiplier"]), shifts[1])
    out = _scale_down(fp.wrap_int32(sa - sb), int(p["output_multiplier"]), shifts[2]) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(np.int8)


def to_output(p: dict, x: np.ndarray, k: int) -> np.ndarray:
    """Input k's values x in the output's quantization (raw when identity)."""
    offset, mult, shift = (int(p[f"input{k}_{f}"]) for f in ("offset", "multiplier", "shift"))
    if not -31 <= shift <= 31:
        raise ValueError("shift out of [-31, 31]")
    if mult == 1 << 30 and shift == 1 and offset + int(p["output_offset"]) == 0:
        return x
    return np.clip(fp.multiply_by_quantized_multiplier(x + offset, mult, shift) + int(p["output_offset"]), -128, 127)


def _max_min(params: dict, a, b, fn) -> np.ndarray:
    x, y = _operands(params, a, b)
    return fn(to_output(params, x, 1), to_output(params, y, 2)).astype(np.int8)


def maximum_s8(params: dict, a, b) -> np.ndarray:
    return _max_min(params, a, b, np.maximum)


def minimum_s8(params: dict, a, b) -> np.ndarray:
    return _max_min(params, a, b, np.minimum)
