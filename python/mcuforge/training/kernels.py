"""NumPy twins of the training kernels in runtime/src/mcf_train.c, equal to
them bit for bit.

Everything that feeds the trained state is integer arithmetic (float is not
reproducible across targets: FMA contraction, libm, summation order):

* A gradient tensor is int16 ``g`` plus an int32 exponent ``e``:
  dL/dt (in real units) = g * 2^e. A kernel accumulates in int64, finds the
  integer max-abs of its accumulators and rescales them to 14 significant
  bits (`normalize`), so each tensor gets its own power-of-two exponent.
* Parameter updates multiply an int64 gradient accumulator by a compile-time
  Q31 multiplier with a shift that folds the learning rate, quantization-aware
  scaling and the scales (`scale`), then the runtime exponent as a shift.
* A trained weight is a 16-bit master value in units of s_w/256 (8 fractional
  bits) kept as two int8 parts: the filter the forward kernels read (the
  master rounded) and the fraction rounding left over
  (master = filter * 256 + fraction, fractions start at 0).

Rounding everywhere is "add half, arithmetic shift right" (ties up).
"""
from __future__ import annotations

import numpy as np

MASTER_FRACTION_BITS = 8
MASTER_LIMIT = 127 << MASTER_FRACTION_BITS
MOMENTUM_BITS = 15  # the SGD momentum as a Q15 integer
NORM_BITS = 14  # significant bits of a normalized gradient (|g| <= 2^14)
GRAD_SUM_MAX_DIFF = 30  # exponents further apart: the smaller addend is dropped
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SCALE_SATURATION = 1 << 62


def bitlen(v) -> np.ndarray:
    """Bits of |v| (0 for 0), exact for int64."""
    a = np.abs(np.asarray(v, dtype=np.int64))
    n = np.zeros(a.shape, dtype=np.int64)
    for k in range(63):
        n += a >= (np.int64(1) << k)
    return n


def shift_round(x, d) -> np.ndarray:
    """x * 2^-d rounded (ties up) for d > 0, x * 2^-d exactly for d <= 0."""
    x = np.asarray(x, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    right = np.maximum(d, 0)
    half = np.where(right > 0, np.left_shift(np.int64(1), np.maximum(right - 1, 0)), 0)
    return np.where(d > 0, (x + half) >> right, x << np.maximum(-d, 0))


def normalize(acc, multiplier: int, shift_base: int, exponent: int) -> tuple[np.ndarray, int]:
    """int64 accumulators worth acc * (multiplier / 2^31) * 2^(shift_base + exponent)
    -> (int16 values, exponent)."""
    acc = np.asarray(acc, dtype=np.int64)
    maxabs = int(np.max(np.abs(acc))) if acc.size else 0
    if maxabs == 0:
        return np.zeros(acc.shape, dtype=np.int16), int(exponent + shift_base)
    s = maxabs.bit_length() - NORM_BITS
    a = shift_round(acc, s)
    out = shift_round(a * np.int64(multiplier), 31)
    return out.astype(np.int16), int(exponent + shift_base + s)


def scale(acc, multiplier, shift) -> np.ndarray:
    """round(acc * multiplier * 2^(shift - 31)) in int64 without overflow
    (saturating at +-2^62)."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), acc.shape)
    r = 31 - np.broadcast_to(np.asarray(shift, dtype=np.int64), acc.shape)
    d = np.maximum(bitlen(acc) - 31, 0)
    a = shift_round(acc, d)
    r = r - d
    prod = a * m
    small = np.where(r > 62, 0, shift_round(prod, np.minimum(r, 62)))
    left = np.maximum(-r, 0)
    over = (prod != 0) & (bitlen(prod) + left > 62)
    sat = np.where(prod < 0, -SCALE_SATURATION, SCALE_SATURATION)
    big = np.where(over, sat, prod << np.where(over, 0, left))
    return np.where(r <= 0, big, small)


# ---- kernels ----------------------------------------------------------------

def mask(g: np.ndarray, y: np.ndarray | None, act_min: int, act_max: int) -> np.ndarray:
    """Gradient through the int8 clamp: zero where the output sits on a bound."""
    if y is None:
        return g
    y = np.asarray(y, dtype=np.int64).reshape(g.shape)
    return np.where((y > act_min) & (y < act_max), g, 0)


def train_loss(p: dict, probs: np.ndarray, label: int) -> tuple[np.ndarray, int, int]:
    """Softmax cross-entropy from TFLite's int8 softmax output (scale 1/256,
    zero point -128): dL/dlogits = p - onehot in units of 2^-8, and
    k = 256 * p[label] (the loss is a table of -ln(k/256) in the generated code)."""
    classes = int(p["classes"])
    q = np.asarray(probs, dtype=np.int64).reshape(-1)[:classes] + 128
    g = q.copy()
    g[label] -= 256
    return g.astype(np.int16), -8, int(q[label])


def train_mask(p: dict, g: np.ndarray, e: int, y: np.ndarray) -> tuple[np.ndarray, int]:
    return mask(np.asarray(g, dtype=np.int64), y, int(p["act_min"]), int(p["act_max"])).astype(np.int16), e


def train_grad_sum(p: dict, g1: np.ndarray, e1: int, g2: np.ndarray, e2: int) -> tuple[np.ndarray, int]:
    if e1 < e2:
        g1, e1, g2, e2 = g2, e2, g1, e1
    diff = e1 - e2
    a = np.asarray(g1, dtype=np.int64)
    if diff > GRAD_SUM_MAX_DIFF:
        acc, e = a, e1
    else:
        acc, e = (a << diff) + np.asarray(g2, dtype=np.int64), e2
    return normalize(acc, 1 << 30, 1, e)


def _window_counts(p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    in_h, in_w = int(p["in_h"]), int(p["in_w"])
    oy = np.arange(int(p["out_h"]))
    ox = np.arange(int(p["out_w"]))
    hs = oy * int(p["stride_h"]) - int(p["pad_top"])
    ws = ox * int(p["stride_w"]) - int(p["pad_left"])
    he, we = np.minimum(hs + int(p["k_h"]), in_h), np.minimum(ws + int(p["k_w"]), in_w)
    hs, ws = np.maximum(hs, 0), np.maximum(ws, 0)
    return hs, he, ws, we


def train_pool_backward(p: dict, g: np.ndarray, e: int, y: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Average pooling (count excludes padding) and mean: each input pixel gets
    the gradient of every window holding it times round(2^16 / count)."""
    c = int(p["channels"])
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    gm = np.asarray(g, dtype=np.int64).reshape(out_h, out_w, c)
    if int(p["use_mask"]):
        gm = mask(gm, y, int(p["act_min"]), int(p["act_max"]))
    hs, he, ws, we = _window_counts(p)
    acc = np.zeros((int(p["in_h"]), int(p["in_w"]), c), dtype=np.int64)
    for i in range(out_h):
        for j in range(out_w):
            n = int((he[i] - hs[i]) * (we[j] - ws[j]))
            if n <= 0:
                continue
            r = (65536 + n // 2) // n
            acc[hs[i]:he[i], ws[j]:we[j], :] += gm[i, j] * r
    return normalize(acc, 1 << 30, -15, e)


def _geometry(p: dict):
    keys = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
            "dilation_h", "dilation_w", "pad_top", "pad_left", "in_per_group", "out_per_group")
    return [int(p[k]) for k in keys]


def _filter_index(p: dict, o, ky, kx, il):
    return (o * int(p["w_stride_o"]) + ky * int(p["w_stride_ky"]) + kx * int(p["w_stride_kx"])
            + il * int(p["w_stride_i"]))


def _masked(p: dict, g, y) -> np.ndarray:
    out_h, out_w, out_c = int(p["out_h"]), int(p["out_w"]), int(p["out_c"])
    gm = np.asarray(g, dtype=np.int64).reshape(out_h * out_w, out_c)
    return mask(gm, y, int(p["act_min"]), int(p["act_max"]))


def _taps(p: dict):
    """(ky, kx, input rows, input cols) of every output pixel per tap; rows
    and cols are input coordinates (may be outside the input)."""
    in_h, in_w, _, out_h, out_w, _, k_h, k_w, sh, sw, dh, dw, pt, pl, _, _ = _geometry(p)
    oy = np.arange(out_h)[:, None] * sh - pt
    ox = np.arange(out_w)[None, :] * sw - pl
    for ky in range(k_h):
        for kx in range(k_w):
            rows = np.broadcast_to(oy + ky * dh, (out_h, out_w)).reshape(-1)
            cols = np.broadcast_to(ox + kx * dw, (out_h, out_w)).reshape(-1)
            yield ky, kx, rows, cols


def _filter_matrix(p: dict, filt) -> np.ndarray:
    """The filter as (out_c, k_h, k_w, in_per_group) int64."""
    out_c, k_h, k_w, ipg = int(p["out_c"]), int(p["k_h"]), int(p["k_w"]), int(p["in_per_group"])
    o, ky, kx, il = np.meshgrid(np.arange(out_c), np.arange(k_h), np.arange(k_w), np.arange(ipg), indexing="ij")
    return np.asarray(filt, dtype=np.int64).reshape(-1)[_filter_index(p, o, ky, kx, il)]


def _group_gather(p: dict, values: np.ndarray) -> np.ndarray:
    """(P, in_c) input values -> (P, out_c, in_per_group): each output
    channel's group of input channels."""
    opg, ipg = int(p["out_per_group"]), int(p["in_per_group"])
    out_c = int(p["out_c"])
    groups = np.arange(out_c) // opg
    idx = groups[:, None] * ipg + np.arange(ipg)[None, :]
    return values[:, idx]


def train_conv_input_grad(p: dict, g: np.ndarray, e: int, y: np.ndarray, filt) -> tuple[np.ndarray, int]:
    """dL/dx of conv2d / depthwise / fully connected (a grouped convolution):
    sum over taps and output channels of w * masked g * grad_scale[o]."""
    in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, *_ = _geometry(p)
    ipg, opg = int(p["in_per_group"]), int(p["out_per_group"])
    gs = _masked(p, g, y) * np.asarray(p["grad_scale"], dtype=np.int64)[None, :]  # (P, out_c)
    wm = _filter_matrix(p, filt)  # (out_c, k_h, k_w, ipg)
    acc = np.zeros((in_h, in_w, in_c), dtype=np.int64)
    groups = out_c // opg
    for ky, kx, rows, cols in _taps(p):
        ok = (rows >= 0) & (rows < in_h) & (cols >= 0) & (cols < in_w)
        if not ok.any():
            continue
        w = wm[:, ky, kx, :]  # (out_c, ipg)
        # contribution[P, group, il] = sum_oo gs[P, group*opg+oo] * w[group*opg+oo, il]
        contrib = np.einsum("pgo,goi->pgi", gs.reshape(-1, groups, opg), w.reshape(groups, opg, ipg))
        contrib = contrib.reshape(-1, in_c)
        np.add.at(acc, (rows[ok], cols[ok]), contrib[ok])
    return normalize(acc, int(p["grad_multiplier"]), int(p["grad_shift"]), e)


def conv_gradients(p: dict, g: np.ndarray, x: np.ndarray | None, y: np.ndarray):
    """Integer accumulators of the parameter gradients: (weight acc of the
    trained channels (n, k_h, k_w, ipg) or None, bias acc (out_c,))."""
    in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, *_ = _geometry(p)
    ipg = int(p["in_per_group"])
    gm = _masked(p, g, y)  # (P, out_c)
    bias_acc = gm.sum(axis=0)
    n = int(p["trained_channels"])
    if n == 0 or x is None:
        return None, bias_acc
    xo = np.asarray(x, dtype=np.int64).reshape(in_h, in_w, in_c) + int(p["input_offset"])
    wacc = np.zeros((n, k_h, k_w, ipg), dtype=np.int64)
    for ky, kx, rows, cols in _taps(p):
        ok = (rows >= 0) & (rows < in_h) & (cols >= 0) & (cols < in_w)
        vals = np.zeros((rows.size, in_c), dtype=np.int64)
        vals[ok] = xo[rows[ok], cols[ok]]
        xg = _group_gather(p, vals)[:, :n, :]  # (P, n, ipg)
        wacc[:, ky, kx, :] = np.einsum("po,poi->oi", gm[:, :n], xg)
    return wacc, bias_acc


def conv_deltas(p: dict, g, e: int, x, y) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The parameter updates (what is subtracted, clamped to int32): weights
    (n, k_h, k_w, ipg) in master units, biases (out_c,) in bias units; None
    when not trained."""
    wacc, bacc = conv_gradients(p, g, x, y)
    wd = bd = None
    if wacc is not None:
        mult = np.asarray(p["weight_multiplier"], dtype=np.int64)[:, None, None, None]
        sh = np.asarray(p["weight_shift"], dtype=np.int64)[:, None, None, None] + e
        wd = np.clip(scale(wacc, mult, sh), INT32_MIN, INT32_MAX)
    if p.get("bias_multiplier") is not None:
        bd = np.clip(scale(bacc, np.asarray(p["bias_multiplier"], dtype=np.int64),
                           np.asarray(p["bias_shift"], dtype=np.int64) + e), INT32_MIN, INT32_MAX)
    return wd, bd


def with_momentum(p: dict, velocity: np.ndarray | None, at: int, d):
    """SGD with momentum: v = round(momentum * v) + d (momentum in Q15,
    saturating to int32) is the update; plain d without momentum."""
    if velocity is None or not p.get("momentum"):
        return d
    d = np.asarray(d, dtype=np.int64)
    v = velocity[at:at + d.size].astype(np.int64).reshape(d.shape)
    v = np.clip(shift_round(v * int(p["momentum"]), MOMENTUM_BITS) + d, INT32_MIN, INT32_MAX)
    velocity[at:at + d.size] = v.reshape(-1).astype(np.int32)
    return v


def apply_deltas(p: dict, wd, bd, fraction: np.ndarray | None, filt: np.ndarray | None,
                 bias: np.ndarray | None, velocity: np.ndarray | None = None) -> None:
    """In place: master -= wd (clamped), filter = master rounded, fraction =
    the rest (master = filter * 256 + fraction); bias -= bd
    (saturating); with momentum the updates are the velocities (weights', then
    biases', in `velocity`)."""
    nw, _ = delta_layout(p)
    wd = None if wd is None else with_momentum(p, velocity, 0, wd)
    bd = None if bd is None else with_momentum(p, velocity, nw, bd)
    if wd is not None:
        idx = trained_filter_index(p, wd.shape[0])
        m = master_weights(filt, fraction, idx) - wd.reshape(-1)
        m = np.clip(m, -MASTER_LIMIT, MASTER_LIMIT)
        f = shift_round(m, MASTER_FRACTION_BITS)
        filt[idx] = f
        fraction[:] = (m - (f << MASTER_FRACTION_BITS)).astype(np.int8)
    if bd is not None:
        bias[:] = np.clip(bias.astype(np.int64) - bd, INT32_MIN, INT32_MAX).astype(np.int32)


def trained_filter_index(p: dict, channels: int) -> np.ndarray:
    """Filter index of each trained weight, in master order (channel, ky, kx,
    input in group)."""
    kh, kw, ipg = int(p["k_h"]), int(p["k_w"]), int(p["in_per_group"])
    o, ky, kx, il = np.meshgrid(np.arange(channels), np.arange(kh), np.arange(kw), np.arange(ipg), indexing="ij")
    return _filter_index(p, o, ky, kx, il).reshape(-1)


def master_weights(filt: np.ndarray, fraction: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The 16-bit master values (int64, master order) of the trained weights."""
    return (filt[idx].astype(np.int64) << MASTER_FRACTION_BITS) + fraction.astype(np.int64)


def delta_layout(p: dict) -> tuple[int, int]:
    """(weight deltas, bias deltas) stored by an unordered update step."""
    nw = int(p["trained_channels"]) * int(p["k_h"]) * int(p["k_w"]) * int(p["in_per_group"])
    nb = int(p["out_c"]) if p.get("bias_multiplier") is not None else 0
    return nw, nb
