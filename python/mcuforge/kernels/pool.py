"""NumPy twins of mcf_avg_pool_s8 and mcf_max_pool_s8
(TFLM reference_integer_ops::AveragePool / MaxPool, int8)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8, check_act, padded, positive, window_slices


def _setup(p: dict, x, fill: int):
    positive(p, "in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w")
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["channels"])
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    k_h, k_w = int(p["k_h"]), int(p["k_w"])
    xi = as_int8(x, h * w * c).reshape(h, w, c).astype(np.int64)
    rows = (out_h - 1) * int(p["stride_h"]) + k_h
    cols = (out_w - 1) * int(p["stride_w"]) + k_w
    xp, row0, col0 = padded(xi, int(p["pad_top"]), int(p["pad_left"]), rows, cols, fill)
    return xp, row0, col0


def _window_counts(p: dict) -> np.ndarray:
    """Taps inside the input per output pixel, shape (out_h, out_w, 1)."""
    def extent(out, stride, pad, k, size):
        start = np.arange(out, dtype=np.int64) * stride - pad
        return np.minimum(start + k, size) - np.maximum(start, 0)
    ys = extent(int(p["out_h"]), int(p["stride_h"]), int(p["pad_top"]), int(p["k_h"]), int(p["in_h"]))
    xs = extent(int(p["out_w"]), int(p["stride_w"]), int(p["pad_left"]), int(p["k_w"]), int(p["in_w"]))
    if np.any(ys <= 0) or np.any(xs <= 0):
        raise ValueError("average pooling window entirely in the padding")
    return (ys[:, None] * xs[None, :])[:, :, None]


def avg_pool_s8(params: dict, x) -> np.ndarray:
    p = params
    lo, hi = check_act(p)
    requantize = bool(int(p.get("requantize", 0)))
    if requantize and not -31 <= int(p["shift"]) <= 31:
        raise ValueError("shift out of [-31, 31]")
    xp, row0, col0 = _setup(p, x, 0)
    count = _window_counts(p)
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    acc = np.zeros((out_h, out_w, int(p["channels"])), dtype=np.int64)
    for ky in range(int(p["k_h"])):
        for kx in range(int(p["k_w"])):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w)
            acc += xp[rs, cs, :]
    if requantize:
        acc = acc + int(p["input_offset"]) * count
        acc = fp.multiply_by_quantized_multiplier(acc, int(p["multiplier"]), int(p["shift"]))
    half = count // 2
    # (acc + half) / count for acc > 0, (acc - half) / count otherwise, C truncation
    acc = np.where(acc > 0, (acc + half) // count, -((half - acc) // count))
    if requantize:
        acc = acc + int(p["output_offset"])
    return np.clip(acc, lo, hi).astype(np.int8).reshape(-1)


def max_pool_s8(params: dict, x) -> np.ndarray:
    p = params
    lo, hi = check_act(p)
    xp, row0, col0 = _setup(p, x, -128)
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    best = np.full((out_h, out_w, int(p["channels"])), -128, dtype=np.int64)
    for ky in range(int(p["k_h"])):
        for kx in range(int(p["k_w"])):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w)
            np.maximum(best, xp[rs, cs, :], out=best)
    return np.clip(best, lo, hi).astype(np.int8).reshape(-1)
