"""NumPy twin of mcf_transpose_conv_s8: TFLM reference_integer_ops::TransposeConv
(the scatter of each input pixel times the filter into int32 sums), then
conv2d's requantization."""
from __future__ import annotations

import numpy as np

from ._common import as_int8, positive, requantize_acc


def scatter_sum(x: np.ndarray, filt: np.ndarray, strides, pads, out_hw) -> np.ndarray:
    """TransposeConv's sums: input pixel (iy, ix) times tap (ky, kx) lands on
    output (iy * stride_h - pad_top + ky, ix * stride_w - pad_left + kx);
    x (h, w, in_c), filt (out_c, k_h, k_w, in_c) -> (out_h, out_w, out_c)."""
    (h, w, _), (oc, kh, kw, _) = x.shape, filt.shape
    (sh, sw), (pt, pl), (oh, ow) = strides, pads, out_hw
    contrib = np.einsum("yxc,okjc->yxkjo", x, filt)
    full = np.zeros(((h - 1) * sh + kh, (w - 1) * sw + kw, oc), contrib.dtype)
    for ky in range(kh):
        for kx in range(kw):
            full[ky:ky + (h - 1) * sh + 1:sh, kx:kx + (w - 1) * sw + 1:sw] += contrib[:, :, ky, kx]
    acc = np.zeros((oh, ow, oc), contrib.dtype)
    y0, y1 = max(pt, 0), min(pt + oh, full.shape[0])
    x0, x1 = max(pl, 0), min(pl + ow, full.shape[1])
    if y1 > y0 and x1 > x0:
        acc[y0 - pt:y1 - pt, x0 - pl:x1 - pl] = full[y0:y1, x0:x1]
    return acc


def transpose_conv_s8(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_c", "out_c", "k_h", "k_w", "stride_h", "stride_w")
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    oh, ow, oc = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    kh, kw, sh, sw = int(p["k_h"]), int(p["k_w"]), int(p["stride_h"]), int(p["stride_w"])
    pt, pl = int(p["pad_top"]), int(p["pad_left"])
    if min(h, w, oh, ow) < 0:
        raise ValueError("negative size")
    xi = as_int8(x, h * w * c).reshape(h, w, c).astype(np.int64) + int(p["input_offset"])
    filt = np.asarray(p["filter"], np.int64).reshape(oc, kh, kw, c)
    acc = scatter_sum(xi, filt, (sh, sw), (pt, pl), (oh, ow))
    return requantize_acc(acc, p, oc).reshape(-1)
