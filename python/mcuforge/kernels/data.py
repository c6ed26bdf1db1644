"""NumPy twins of the data-movement kernels in mcf_data.c: requantize
(TFLM reference_ops::Requantize), concat, pad and transpose."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import as_int8, check_act


def _requantize(p: dict, x: np.ndarray) -> np.ndarray:
    lo, hi = check_act(p)
    shift = int(p["shift"])
    if not -31 <= shift <= 31:
        raise ValueError("shift out of [-31, 31]")
    v = x.astype(np.int64) + int(p["input_offset"])
    out = fp.multiply_by_quantized_multiplier(v, int(p["multiplier"]), shift) + int(p["output_offset"])
    return np.clip(out, lo, hi).astype(np.int8)


def requantize_s8(params: dict, x) -> np.ndarray:
    size = int(params["size"])
    if size < 0:
        raise ValueError("negative size")
    return _requantize(params, as_int8(x, size))


def concat_s8(params: dict, inputs) -> np.ndarray:
    p = params
    n, outer = int(p["num_inputs"]), int(p["outer"])
    inner = [int(v) for v in np.asarray(p["inner"]).reshape(-1)[:n]]
    requant = list(p["requant"])[:n]
    if n <= 0 or outer < 0 or len(inputs) < n or len(requant) < n or any(v < 0 for v in inner):
        raise ValueError("bad concat parameters")
    parts = [_requantize(requant[i], as_int8(inputs[i], outer * inner[i], f"input {i}")).reshape(outer, inner[i])
             for i in range(n)]
    return np.concatenate(parts, axis=1).reshape(-1)


def pad_s8(params: dict, x) -> np.ndarray:
    p = params
    h, w, c = int(p["in_h"]), int(p["in_w"]), int(p["in_c"])
    pads = [int(p[k]) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right", "pad_front", "pad_back")]
    value = int(p["pad_value"])
    if min(h, w, c) < 0 or min(pads) < 0 or not -128 <= value <= 127:
        raise ValueError("bad pad parameters")
    xi = as_int8(x, h * w * c).reshape(h, w, c)
    out = np.pad(xi, ((pads[0], pads[1]), (pads[2], pads[3]), (pads[4], pads[5])), constant_values=value)
    return out.reshape(-1)


def transpose_s8(params: dict, x) -> np.ndarray:
    shape = [int(v) for v in params["in_shape"]]
    perm = [int(v) for v in params["perm"]]
    if len(shape) != 4 or sorted(perm) != [0, 1, 2, 3] or min(shape) < 0:
        raise ValueError("bad transpose parameters")
    xi = as_int8(x, int(np.prod(shape))).reshape(shape)
    return np.ascontiguousarray(xi.transpose(perm)).reshape(-1)


def copy_tile_s8(params: dict, src, dst) -> np.ndarray:
    """Twin of mcf_copy_tile_s8: `dst` (the full tensor's current bytes) with
    the tile from `src` written in; returns the new full tensor bytes."""
    c = int(params["channels"])
    th, tw = int(params["tile_h"]), int(params["tile_w"])
    sw, sy, sx = int(params["src_w"]), int(params["src_y"]), int(params["src_x"])
    dw, dy, dx = int(params["dst_w"]), int(params["dst_y"]), int(params["dst_x"])
    if c <= 0 or min(th, tw, sy, sx, dy, dx) < 0 or sx + tw > sw or dx + tw > dw:
        raise ValueError("bad copy_tile parameters")
    s = as_int8(src, name="src").reshape(-1, sw, c)
    d = as_int8(dst, name="dst").reshape(-1, dw, c).copy()
    d[dy:dy + th, dx:dx + tw] = s[sy:sy + th, sx:sx + tw]
    return d.reshape(-1)


def strided_slice_s8(params: dict, x) -> np.ndarray:
    """Twin of mcf_strided_slice_s8 (mcf_strided_slice.c)."""
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
    xi = as_int8(x, int(np.prod(shape))).reshape(shape)
    return np.ascontiguousarray(xi[np.ix_(*index)]).reshape(-1)


def resize_nearest_s8(params: dict, x) -> np.ndarray:
    """Twin of mcf_resize_nearest_s8 (mcf_resize_nearest.c)."""
    h, w, c = int(params["in_h"]), int(params["in_w"]), int(params["channels"])
    oh, ow = int(params["out_h"]), int(params["out_w"])
    rows = np.asarray(params["row_index"], np.int64).reshape(-1)[:oh]
    cols = np.asarray(params["col_index"], np.int64).reshape(-1)[:ow]
    if min(h, w, c) <= 0 or min(oh, ow) < 0 or rows.size < oh or cols.size < ow or \
            (oh and (rows.min() < 0 or rows.max() >= h)) or (ow and (cols.min() < 0 or cols.max() >= w)):
        raise ValueError("bad resize parameters")
    xi = as_int8(x, h * w * c).reshape(h, w, c)
    return np.ascontiguousarray(xi[rows][:, cols]).reshape(-1)
