"""NumPy twins of mcf_binary_s8 / mcf_binary_const_s8 (mcf_binary.c): int8
ADD, SUB, MUL and PRELU with 4-D broadcasting, of two activations or of an
activation and a constant operand (params ``constant``)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import check_act
from .elementwise import broadcast_operands as _operands  # the walk of mcf_broadcast.c

KINDS = {"add": 0, "sub": 1, "mul": 2, "prelu": 3}


def _scale_down(x, multiplier, shift) -> np.ndarray:
    return fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(x, multiplier), -shift)


def binary_s8(params: dict, a, b) -> np.ndarray:
    p = params
    lo, hi = check_act(p)
    kind = int(p["kind"])
    shifts = [int(p[k]) for k in ("input1_shift", "input2_shift", "output_shift")]
    if any(not -31 <= s <= 31 for s in shifts) or kind not in KINDS.values():
        raise ValueError("bad binary parameters")
    x, y = _operands(p, a, b)
    x = x + int(p["input1_offset"])
    y = y + int(p["input2_offset"])
    if kind in (KINDS["add"], KINDS["sub"]):
        left = int(p["left_shift"])
        if not 0 <= left <= 30 or any(s > 0 for s in shifts):
            raise ValueError("bad add/sub parameters")
        sa = _scale_down(fp.wrap_int32(x << left), int(p["input1_multiplier"]), shifts[0])
        sb = _scale_down(fp.wrap_int32(y << left), int(p["input2_multiplier"]), shifts[1])
        total = fp.wrap_int32(sa - sb if kind == KINDS["sub"] else sa + sb)
        out = _scale_down(total, int(p["output_multiplier"]), shifts[2])
    elif kind == KINDS["mul"]:
        out = fp.multiply_by_quantized_multiplier(fp.wrap_int32(x * y), int(p["output_multiplier"]), shifts[2])
    else:
        pos = fp.multiply_by_quantized_multiplier(x, int(p["input1_multiplier"]), shifts[0])
        neg = fp.multiply_by_quantized_multiplier(fp.wrap_int32(x * y), int(p["output_multiplier"]), shifts[2])
        out = np.where(x >= 0, pos, neg)
    return np.clip(out + int(p["output_offset"]), lo, hi).astype(np.int8)


def binary_const_s8(params: dict, x) -> np.ndarray:
    c = params.get("constant")
    if c is None:
        raise ValueError("no constant operand")
    return binary_s8(params, c, x) if int(params["constant_first"]) else binary_s8(params, x, c)
