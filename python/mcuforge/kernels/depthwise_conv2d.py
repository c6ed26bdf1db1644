"""NumPy twins of mcf_depthwise_conv2d_s8 and its in-place variant
(TFLM reference_integer_ops::DepthwiseConvPerChannel)."""
from __future__ import annotations

import numpy as np

from ._common import as_int8, padded, positive, requantize_acc, window_slices


def _check(p: dict) -> None:
    positive(p, "in_h", "in_w", "in_c", "out_h", "out_w", "depth_multiplier", "k_h", "k_w",
             "stride_h", "stride_w", "dilation_h", "dilation_w")
    if int(p["out_c"]) != int(p["in_c"]) * int(p["depth_multiplier"]):
        raise ValueError("out_c must equal in_c * depth_multiplier")


def depthwise_conv2d_s8(params: dict, x) -> np.ndarray:
    p = params
    _check(p)
    in_h, in_w, in_c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    out_h, out_w, out_c = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    k_h, k_w = int(p["k_h"]), int(p["k_w"])
    dh, dw = int(p["dilation_h"]), int(p["dilation_w"])
    mult = int(p["depth_multiplier"])
    filt = np.asarray(p["filter"], dtype=np.int8).reshape(k_h, k_w, out_c).astype(np.int64)

    xo = as_int8(x, in_h * in_w * in_c).reshape(in_h, in_w, in_c).astype(np.int64)
    xo += int(p["input_offset"])
    if mult > 1:  # output channel ic * mult + m reads input channel ic
        xo = np.repeat(xo, mult, axis=2)
    rows = (out_h - 1) * int(p["stride_h"]) + (k_h - 1) * dh + 1
    cols = (out_w - 1) * int(p["stride_w"]) + (k_w - 1) * dw + 1
    xp, row0, col0 = padded(xo, int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0)

    acc = np.zeros((out_h, out_w, out_c), dtype=np.int64)
    for ky in range(k_h):
        for kx in range(k_w):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w, dh, dw)
            acc += xp[rs, cs, :] * filt[ky, kx]
    return requantize_acc(acc, p, out_c).reshape(-1)


def _check_inplace(p: dict) -> None:
    _check(p)
    if int(p["depth_multiplier"]) != 1:
        raise ValueError("in-place depthwise needs depth_multiplier == 1")
    if int(p["out_h"]) * int(p["out_w"]) > int(p["in_h"]) * int(p["in_w"]):
        raise ValueError("in-place depthwise needs out_h * out_w <= in_h * in_w")


def depthwise_conv2d_s8_inplace(params: dict, x) -> np.ndarray:
    """Same bytes as depthwise_conv2d_s8 (the C kernel computes in the input buffer)."""
    _check_inplace(params)
    return depthwise_conv2d_s8(params, x)


def depthwise_conv2d_s8_inplace_scratch_size(params: dict) -> int:
    """Bytes of scratch mcf_depthwise_conv2d_s8_inplace uses: ring rows * in_w.

    See the proof in mcf_depthwise_conv2d.c. For output row oy:
    lo = max(top, 0), need = min(top + (k_h-1)*dilation_h, in_h-1),
    W = ((oy+1)*out_w - 1) // in_w (last input row the row overwrites),
    hi = max(need, min(W, last)) with last = need(out_h - 1);
    rows = max(hi - lo + 1) over oy, at least 0.
    """
    p = params
    _check_inplace(p)
    in_h, in_w = int(p["in_h"]), int(p["in_w"])
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    sh, pt = int(p["stride_h"]), int(p["pad_top"])
    span = (int(p["k_h"]) - 1) * int(p["dilation_h"])
    oy = np.arange(out_h, dtype=np.int64)
    top = oy * sh - pt
    lo = np.maximum(top, 0)
    need = np.minimum(top + span, in_h - 1)
    last = need[-1]
    hi = np.maximum(need, np.minimum(((oy + 1) * out_w - 1) // in_w, last))
    rows = max(0, int(np.max(hi - lo + 1)))
    return rows * in_w
