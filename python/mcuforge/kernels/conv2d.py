"""NumPy twin of mcf_conv2d_s8 (TFLM reference_integer_ops::ConvPerChannel)."""
from __future__ import annotations

import numpy as np

from ._common import as_int8, padded, positive, requantize_acc, window_slices


def conv2d_s8(params: dict, x) -> np.ndarray:
    p = params
    positive(p, "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w",
             "stride_h", "stride_w", "dilation_h", "dilation_w")
    in_h, in_w, in_c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    out_h, out_w, out_c = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    k_h, k_w = int(p["k_h"]), int(p["k_w"])
    dh, dw = int(p["dilation_h"]), int(p["dilation_w"])
    filt = np.asarray(p["filter"], dtype=np.int8).reshape(out_c, k_h, k_w, in_c)

    # Taps in the padding must contribute 0 to sum(filter * (x + input_offset)):
    # pad the offset input with zeros. float64 BLAS is exact here: every
    # partial sum is an integer far below 2^53.
    xo = as_int8(x, in_h * in_w * in_c).reshape(in_h, in_w, in_c).astype(np.float64)
    xo += int(p["input_offset"])
    rows = (out_h - 1) * int(p["stride_h"]) + (k_h - 1) * dh + 1
    cols = (out_w - 1) * int(p["stride_w"]) + (k_w - 1) * dw + 1
    xp, row0, col0 = padded(xo, int(p["pad_top"]), int(p["pad_left"]), rows, cols, 0.0)
    wf = filt.astype(np.float64)

    acc = np.zeros((out_h * out_w, out_c), dtype=np.float64)
    for ky in range(k_h):
        for kx in range(k_w):
            rs, cs = window_slices(row0, col0, ky, kx, p, out_h, out_w, dh, dw)
            acc += xp[rs, cs, :].reshape(-1, in_c) @ wf[:, ky, kx, :].T
    return requantize_acc(acc.astype(np.int64), p, out_c).reshape(-1)
