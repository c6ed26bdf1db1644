"""Helpers shared by the NumPy twins of the C kernels."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp


def as_int8(x, size: int | None = None, name: str = "input") -> np.ndarray:
    """Flat int8 view/copy of an input array; checks the element count."""
    a = np.asarray(x)
    if a.dtype != np.int8:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < -128 or a.max() > 127):
            raise ValueError(f"{name} must be int8")
        a = a.astype(np.int8)
    a = a.reshape(-1)
    if size is not None and a.size != size:
        raise ValueError(f"{name} has {a.size} elements, expected {size}")
    return a


def check_act(p: dict) -> tuple[int, int]:
    lo, hi = int(p["act_min"]), int(p["act_max"])
    if lo < -128 or hi > 127 or lo > hi:
        raise ValueError(f"bad activation range [{lo}, {hi}]")
    return lo, hi


def quant_arrays(p: dict, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) as int64 arrays of length `channels` (broadcast when per tensor)."""
    mult = np.asarray(p["multiplier"], dtype=np.int64).reshape(-1)
    shift = np.asarray(p["shift"], dtype=np.int64).reshape(-1)
    n = channels if p.get("per_channel") else 1
    if mult.size < n or shift.size < n:
        raise ValueError(f"need {n} multipliers/shifts, got {mult.size}/{shift.size}")
    mult, shift = mult[:n], shift[:n]
    if np.any((shift < -31) | (shift > 31)):
        raise ValueError("shift out of [-31, 31]")
    return np.broadcast_to(mult, (channels,)), np.broadcast_to(shift, (channels,))


def bias_array(p: dict, channels: int) -> np.ndarray | None:
    b = p.get("bias")
    if b is None:
        return None
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    if b.size < channels:
        raise ValueError(f"bias has {b.size} entries, expected {channels}")
    return b[:channels]


def requantize_acc(acc: np.ndarray, p: dict, channels: int) -> np.ndarray:
    """bias, MultiplyByQuantizedMultiplier per channel (last axis), offset, clamp -> int8."""
    lo, hi = check_act(p)
    mult, shift = quant_arrays(p, channels)
    bias = bias_array(p, channels)
    if bias is not None:
        acc = acc + bias
    out = fp.multiply_by_quantized_multiplier(acc, mult, shift) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(np.int8)


def positive(p: dict, *names: str) -> None:
    for n in names:
        if int(p[n]) <= 0:
            raise ValueError(f"{n} must be > 0, got {p[n]}")


def padded(x: np.ndarray, pad_top: int, pad_left: int, rows_needed: int, cols_needed: int,
           value) -> tuple[np.ndarray, int, int]:
    """Pad an (H, W, C) array so that rows -pad_top .. -pad_top + rows_needed - 1
    (and likewise columns) exist; returns (array, row0, col0) where row0/col0
    index input row/column -pad_top/-pad_left in the returned array."""
    h, w = x.shape[0], x.shape[1]
    top, left = max(pad_top, 0), max(pad_left, 0)
    bottom = max(0, rows_needed - pad_top - h)
    right = max(0, cols_needed - pad_left - w)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=value)
    return xp, top - pad_top, left - pad_left


def window_slices(row0: int, col0: int, ky: int, kx: int, p: dict, out_h: int, out_w: int,
                  dilation_h: int = 1, dilation_w: int = 1) -> tuple[slice, slice]:
    """Row/column slices of tap (ky, kx) for every output pixel."""
    r = row0 + ky * dilation_h
    c = col0 + kx * dilation_w
    sh, sw = int(p["stride_h"]), int(p["stride_w"])
    return slice(r, r + (out_h - 1) * sh + 1, sh), slice(c, c + (out_w - 1) * sw + 1, sw)
