"""Compile-time bounds of every int32 accumulator of the generated kernels.

The kernels accumulate in int32, as TFLM does; a sum that leaves the int32
range is undefined behaviour in C (and a wrong answer on any hardware). So
before any code is generated every accumulating layer is bounded from its
actual weights and the int8 input range, and a layer that could overflow is
refused with a message naming it (exit 2), never compiled to wrap silently.

With ``d = max |x - zero_point|`` over int8 ``x`` (at most 255):

* conv2d, depthwise conv2d, fully connected, and any layer with a weight
  tensor (``filter``), per output channel ``c``:
  ``|acc_c| <= d * sum |w_c| + |bias_c|``;
* average pooling: ``|acc| <= d * kernel taps``; mean: ``|acc| <= d * H * W``;
* the requantization that follows multiplies the accumulator by
  ``2^shift`` first when ``shift > 0`` (a real multiplier >= 1): that
  product is bounded too;
* softmax sums ``cols`` exponentials of at most 2^19 each in Q12.19:
  ``cols * 2^19`` must stay below 2^31, so at most 4095 columns.

A layer with no constant weights and no accumulation (add, pooling by max,
data movement) needs no bound here; add's fixed-point stages are bounded by
its fixed left shift of 20 and multipliers below one.
"""
from __future__ import annotations

import numpy as np

from . import fixedpoint as fp
from .ir import Graph, UnsupportedModelError

INT32_MAX = (1 << 31) - 1
SOFTMAX_MAX_COLS = INT32_MAX >> 19  # 4095


def input_swing(input_offset: int) -> int:
    """max |x + input_offset| over int8 x (input_offset = -zero point)."""
    return max(abs(-128 + int(input_offset)), abs(127 + int(input_offset)))


def channel_bounds(filt: np.ndarray, channel_axis: int | None, swing: int, bias: np.ndarray | None) -> np.ndarray:
    """Per output channel: swing * sum |w| + |bias| (Python-exact in int64; every
    term is far below 2^63)."""
    w = np.abs(np.asarray(filt, dtype=np.int64))
    if channel_axis is None:
        sums = np.array([w.sum()], dtype=np.int64)
    else:
        sums = np.moveaxis(w, channel_axis, 0).reshape(w.shape[channel_axis], -1).sum(axis=1)
    bound = sums * int(swing)
    if bias is not None:
        b = np.abs(np.asarray(bias, dtype=np.int64).reshape(-1))
        bound = bound + (b if b.size == bound.size else b.max(initial=0))
    return bound


def _per_channel(shift, channels: int) -> np.ndarray:
    """Requantization shifts per channel (a single or mismatched one: the largest)."""
    s = np.asarray(shift, dtype=np.int64).reshape(-1)
    return s if s.size == channels else np.full(channels, s.max(initial=0))


def _refuse(step, why: str, where: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"{where}: layer '{step.name}' ({step.node.op}) could overflow its int32 accumulator: {why}. Overflow is "
        f"undefined in C and wrong on any hardware, so mcuforge refuses the layer: the weights or scales of this layer are not those of a trained int8 "
        f"model (retrain or requantize it, or split the layer)")


def _check_channels(step, bound: np.ndarray, shift, what: str, where: str) -> None:
    over = np.nonzero(bound > INT32_MAX)[0]
    if over.size:
        c = int(over[0])
        raise _refuse(step, f"{what} of output channel {c} reaches {int(bound[c]):,} > 2^31 - 1 "
                            f"({over.size} channel(s) over)", where)
    # the requantization multiplies by 2^shift first when shift > 0
    shifts = np.clip(_per_channel(shift, bound.size), 0, 31)
    shifted = bound << shifts
    over = np.nonzero(shifted > INT32_MAX)[0]
    if over.size:
        c = int(over[0])
        raise _refuse(step, f"{what} of output channel {c} reaches {int(bound[c]):,}, and the requantization "
                            f"multiplies it by 2^{int(shifts[c])} (a real multiplier >= 1) before scaling: "
                            f"{int(shifted[c]):,} > 2^31 - 1", where)


def check_step(step, graph: Graph) -> None:
    """Raise UnsupportedModelError when a layer's accumulator can overflow."""
    from .quantize import WEIGHT_AXIS

    p = step.params
    where = graph.source or graph.name
    if p.get("filter") is not None and "input_offset" in p:
        axis = WEIGHT_AXIS.get(step.node.op)  # unknown op with weights: one bound over the whole filter
        filt = np.asarray(p["filter"])
        if axis is None or axis >= filt.ndim:
            axis = None
        bound = channel_bounds(filt, axis, input_swing(p["input_offset"]), p.get("bias"))
        _check_channels(step, bound, p.get("shift", 0), "the sum |w| x |x - zero point| + |bias|", where)
        return
    if step.kernel == "avg_pool_s8":
        taps = int(p["k_h"]) * int(p["k_w"])
        swing = input_swing(p["input_offset"]) if p.get("requantize") else 128
        shift = p["shift"] if p.get("requantize") else 0
        _check_channels(step, np.array([taps * swing], dtype=np.int64), shift,
                        f"the sum over a {p['k_h']}x{p['k_w']} window", where)
        return
    if step.kernel == "mean_s8":
        n = int(p["in_h"]) * int(p["in_w"])
        _, shift = fp.mean_fold_multiplier(p["multiplier"], p["shift"], n)
        _check_channels(step, np.array([n * input_swing(p["input_offset"])], dtype=np.int64), shift,
                        f"the sum over {p['in_h']}x{p['in_w']} values", where)
        return
    if step.kernel == "softmax_s8" and int(p["cols"]) > SOFTMAX_MAX_COLS:
        raise _refuse(step, f"the sum of {int(p['cols']):,} exponentials (Q12.19, up to 2^19 each) passes 2^31 "
                            f"beyond {SOFTMAX_MAX_COLS} columns", where)


def check_accumulators(steps, graph: Graph) -> None:
    for step in steps:
        check_step(step, graph)
