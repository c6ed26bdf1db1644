"""Each arm-dsp kernel variant, one layer at a time, equals the NumPy twin of
the portable kernel (and so TFLM) byte for byte: odd sizes, odd channel
counts, every padding, stride and dilation, depth multipliers (those the
generator hands to the portable kernel are checked to be refused), in place.

The host build runs the plain-C implementation of the ACLE intrinsics
(mcf_acle.h), the same kernel code as on Cortex-M (less its assembly loops);
the convolutions also run here under QEMU on Cortex-M4 and M7, with the
assembly and the real instructions, and test_arm_dsp.py runs whole models
there."""
from __future__ import annotations

import ctypes as ct
import subprocess

import numpy as np
import pytest

from mcuforge.tools import qemu
from mcuforge.codegen import arm_dsp
from mcuforge.kernels import KERNELS, RUNTIME_INCLUDE_DIR, RUNTIME_SRC_DIR
from mcuforge.ops import Step

from marks import needs_qemu
from test_kernels import (P8, STRUCTS, _fill, _short, conv_params, fc_params, lib, rand_act,  # noqa: F401
                          rand_i8, rand_requant, rng_for)


def _step(kernel: str, params: dict) -> Step:
    return Step(node=None, kernel=kernel, params=params, inputs=[], outputs=[])


def run_dsp(lib, kernel: str, p: dict, x: np.ndarray, variant=None) -> np.ndarray:
    """The arm-dsp variant the generator selects for (kernel, p) (or the
    given one), on guarded buffers; returns its output bytes."""
    variant = variant or arm_dsp.select(_step(kernel, p))
    assert variant is not None, _short(p)
    keep: list = []
    prepared = arm_dsp.prepared_params(kernel, p, variant)
    if "filter" in prepared and kernel not in arm_dsp.PORTABLE_STRUCT:
        prepared["filter"] = prepared["filter"].astype("<i4").view(np.int8)  # the words' bytes, as in flash
    s = _fill(STRUCTS[kernel], prepared, keep)
    guard = 64
    out_size = KERNELS[kernel](p, x).size
    scratch = np.full(variant.scratch + guard, 0x2D, dtype=np.int8)
    fn = getattr(lib, variant.function)
    size_fn = getattr(lib, variant.function + "_scratch_size")
    assert size_fn(ct.byref(s)) == variant.scratch, "the generator plans another scratch size than the kernel uses"
    if kernel.endswith("_inplace"):
        buf = np.full(x.size + guard, 0x3C, dtype=np.int8)
        buf[:x.size] = x
        status = fn(ct.byref(s), buf.ctypes.data_as(P8), scratch.ctypes.data_as(P8))
        assert np.all(buf[x.size:] == 0x3C), "wrote past the buffer"
        out = buf[:out_size]
    else:
        xin = np.ascontiguousarray(x)
        out = np.full(out_size + guard, 0x55, dtype=np.int8)
        args = [ct.byref(s), xin.ctypes.data_as(P8), out.ctypes.data_as(P8)]
        args.append(scratch.ctypes.data_as(P8) if variant.scratch else None)
        status = fn(*args)
        assert np.all(out[out_size:] == 0x55), "wrote past the output"
        assert np.array_equal(xin, x), "changed its input"
        out = out[:out_size]
    assert status == 0, f"{variant.function} returned {status} for {_short(p)}"
    assert np.all(scratch[variant.scratch:] == 0x2D), "wrote past the scratch"
    return out.copy()


def check_dsp(lib, kernel: str, p: dict, x: np.ndarray, variant=None) -> None:
    expected = KERNELS[kernel](p, x)
    got = run_dsp(lib, kernel, p, x, variant)
    if not np.array_equal(got, expected):
        bad = np.flatnonzero(got != expected)
        raise AssertionError(f"{kernel} (arm-dsp): {bad.size} of {expected.size} bytes differ, first at {bad[0]}: "
                             f"C {got[bad[0]]} vs NumPy {expected[bad[0]]}\nparams {_short(p)}")


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_im2col_and_pointwise(lib, seed):
    """k x k (1, 3, 5, 7 and mixed), strides 1-3, dilations, asymmetric padding,
    odd sizes, 1-9 input and 1-10 output channels (odd K, odd channel pairs,
    a single output pixel)."""
    rng = rng_for("dsp-conv", seed)
    p = conv_params(rng, extreme=seed % 8 == 7)
    check_dsp(lib, "conv2d_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


@pytest.mark.parametrize("in_c,out_c,hw,stride", [(8, 16, (7, 5), 1), (16, 24, (3, 3), 1), (12, 7, (5, 6), 2),
                                                  (64, 33, (4, 3), 1), (3, 8, (9, 9), 1), (20, 1, (1, 1), 1)])
def test_conv2d_pointwise_shapes(lib, in_c, out_c, hw, stride):
    rng = rng_for("dsp-pw", in_c, out_c)
    out_h, out_w = (hw[0] - 1) // stride + 1, (hw[1] - 1) // stride + 1
    p = dict(in_h=hw[0], in_w=hw[1], in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=1, k_w=1,
             stride_h=stride, stride_w=stride, dilation_h=1, dilation_w=1, pad_top=0, pad_left=0,
             input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
             per_channel=1, filter=rand_i8(rng, out_c * in_c), bias=rng.integers(-9999, 9999, out_c).astype(np.int32))
    p["act_min"], p["act_max"] = rand_act(rng, p["output_offset"])
    p["multiplier"], p["shift"] = rand_requant(rng, out_c, True)
    for x in (np.full(hw[0] * hw[1] * in_c, -128, np.int8), np.full(hw[0] * hw[1] * in_c, 127, np.int8),
              rand_i8(rng, hw[0] * hw[1] * in_c)):
        check_dsp(lib, "conv2d_s8", p, x)


def dw_params(rng, extreme=False):
    """Depthwise layers the arm-dsp set specializes: multiplier 1, channels a multiple of 4."""
    while True:
        p = conv_params(rng, depthwise=True, extreme=extreme)
        if p["depth_multiplier"] == 1:
            break
    c = 4 * int(rng.integers(1, 5))
    p.update(in_c=c, out_c=c, filter=rand_i8(rng, p["k_h"] * p["k_w"] * c),
             bias=None if rng.random() < 0.2 else rng.integers(-(1 << 16), 1 << 16, size=c).astype(np.int32))
    p["multiplier"], p["shift"] = rand_requant(rng, c, bool(p["per_channel"]), extreme)
    return p


@pytest.mark.parametrize("seed", range(40))
def test_depthwise(lib, seed):
    """3x3 (unrolled inside, edges by the general path), 1x1, 5x5, 7x7, strides,
    dilations, every padding."""
    rng = rng_for("dsp-dw", seed)
    p = dw_params(rng, extreme=seed % 8 == 7)
    check_dsp(lib, "depthwise_conv2d_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


@pytest.mark.parametrize("seed", range(12))
def test_depthwise_patch_geometry(lib, seed):
    """A patch tile of a layer: the input region larger than the window needs,
    its padding negative where the tile starts inside the input."""
    rng = rng_for("dsp-dw-patch", seed)
    p = dw_params(rng)
    cut_top, cut_left = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    extra_h, extra_w = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    p.update(in_h=p["in_h"] + cut_top + extra_h, in_w=p["in_w"] + cut_left + extra_w,
             pad_top=p["pad_top"] - cut_top, pad_left=p["pad_left"] - cut_left)
    check_dsp(lib, "depthwise_conv2d_s8", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


@pytest.mark.parametrize("seed", range(30))
def test_depthwise_inplace(lib, seed):
    rng = rng_for("dsp-dw-inplace", seed)
    while True:
        p = dw_params(rng)
        if p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
            break
    check_dsp(lib, "depthwise_conv2d_s8_inplace", p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]))


def test_depthwise_shapes_without_variant_fall_back():
    rng = rng_for("dsp-dw-fallback")
    p = conv_params(rng, depthwise=True)
    for mult, c in ((2, 4), (1, 6), (3, 1)):
        q = dict(p, depth_multiplier=mult, in_c=c, out_c=c * mult)
        assert arm_dsp.select(_step("depthwise_conv2d_s8", q)) is None
    assert arm_dsp.select(_step("max_pool_s8", {})) is None  # no arm-dsp variant (average pooling has one)


@pytest.mark.parametrize("seed", range(24))
def test_fully_connected(lib, seed):
    """1-4 rows (the 4-channel single-row path and 2x2 blocks), odd K, odd N."""
    rng = rng_for("dsp-fc", seed)
    p = fc_params(rng, seed)
    check_dsp(lib, "fully_connected_s8", p, rand_i8(rng, p["rows"] * p["in_features"]))


def test_both_requantization_paths_are_exercised():
    """The seeds above hand the kernels layers of both requantization modes:
    the SMMULR path the generator proves exact, and the general one (extreme
    scales, left shifts)."""
    modes = set()
    for seed in range(40):
        rng = rng_for("dsp-conv", seed)
        modes.add(arm_dsp.prepared_params("conv2d_s8", conv_params(rng, extreme=seed % 8 == 7))["per_channel"])
    for seed in range(40):
        modes.add(arm_dsp.prepared_params("depthwise_conv2d_s8", dw_params(rng_for("dsp-dw", seed),
                                                                           extreme=seed % 8 == 7))["per_channel"])
    assert modes == {1, arm_dsp.FAST_REQUANT}


def _first_layer(rng, in_c, k, stride, dilation, hw, pads):
    """A k x k convolution over few input channels (the small-window im2col:
    whole kernel rows gathered into one patch), full clamp range."""
    in_h, in_w = hw
    pt, pl = pads
    span = (k - 1) * dilation + 1
    out_h, out_w = (in_h + 2 * pt - span) // stride + 1, (in_w + 2 * pl - span) // stride + 1
    out_c = int(rng.integers(1, 10))
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k, k_w=k,
             stride_h=stride, stride_w=stride, dilation_h=dilation, dilation_w=dilation, pad_top=pt, pad_left=pl,
             input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
             act_min=-128, act_max=127, per_channel=1, filter=rand_i8(rng, out_c * k * k * in_c),
             bias=rng.integers(-9999, 9999, out_c).astype(np.int32))
    p["multiplier"], p["shift"] = rand_requant(rng, out_c, True)
    return p


@pytest.mark.parametrize("in_c,k,stride,dilation,hw,pads", [
    (3, 3, 2, 1, (9, 11), (1, 1)), (3, 3, 2, 1, (10, 8), (0, 0)), (3, 3, 1, 1, (5, 7), (1, 1)),
    (1, 3, 2, 1, (7, 7), (1, 0)), (2, 5, 3, 1, (11, 9), (2, 2)), (5, 3, 2, 2, (9, 10), (2, 1)),
    (7, 3, 1, 1, (3, 4), (1, 1)), (6, 3, 2, 1, (13, 5), (0, 1)), (1, 7, 2, 1, (9, 9), (3, 3)),
    (3, 1, 2, 1, (5, 5), (0, 0))])
def test_conv2d_small_window(lib, in_c, k, stride, dilation, hw, pads):
    """Odd sizes, every padding side, strides 1-3, dilation 2, K up to 49, both
    a fast (SSAT) and an odd number of output pixels."""
    rng = rng_for("dsp-small", in_c, k, stride, *hw)
    p = _first_layer(rng, in_c, k, stride, dilation, hw, pads)
    assert arm_dsp.prepared_params("conv2d_s8", p)["per_channel"] == arm_dsp.FAST_REQUANT
    size = hw[0] * hw[1] * in_c
    for x in (np.full(size, -128, np.int8), np.full(size, 127, np.int8), rand_i8(rng, size)):
        check_dsp(lib, "conv2d_s8", p, x)


@pytest.mark.parametrize("kernel", ["conv2d_s8", "depthwise_conv2d_s8"])
def test_zero_filter_channels(lib, kernel):
    """Pruned output channels (all-zero filter, bias +-2^30, shift 0 or -31, as
    in MLPerf VWW): the generator computes their constant output and the rest of
    the layer keeps the fast requantization; bit-exact either way."""
    rng = rng_for("dsp-zero", kernel)
    if kernel == "conv2d_s8":
        p = _first_layer(rng, 8, 1, 1, 1, (5, 7), (0, 0))
        p.update(out_c=9, filter=rand_i8(rng, 9 * 8), bias=rng.integers(-9999, 9999, 9).astype(np.int32))
        p["multiplier"], p["shift"] = rand_requant(rng, 9, True)
        rows = p["filter"].reshape(9, -1)
        dead = [1, 4, 8]
        rows[dead] = 0
    else:
        p = dw_params(rng)
        p.update(act_min=-128, act_max=127, per_channel=1)
        c = p["out_c"]
        p["multiplier"], p["shift"] = rand_requant(rng, c, True)
        p["bias"] = rng.integers(-9999, 9999, c).astype(np.int32)
        dead = [0, c - 1]
        p["filter"].reshape(-1, c)[:, dead] = 0
    p["multiplier"], p["shift"] = np.array(p["multiplier"]), np.array(p["shift"])
    p["bias"][dead[0]], p["bias"][dead[-1]] = 1 << 30, -(1 << 30)
    p["shift"][dead[0]], p["multiplier"][dead[0]] = 0, 0
    p["shift"][dead[-1]] = -31
    assert arm_dsp.prepared_params(kernel, p)["per_channel"] == arm_dsp.FAST_REQUANT
    size = p["in_h"] * p["in_w"] * p["in_c"]
    for x in (np.full(size, -128, np.int8), rand_i8(rng, size)):
        check_dsp(lib, kernel, p, x)


# ------------------------------------------------- 1x1: blocks of 6 pixels

MODES = ("sat", "sat_lo", "sat_deep", "clamp", "general")


def pointwise_params(rng, in_c, out_c, hw, mode, stride=1):
    """A 1x1 layer whose requantization is the mode asked for: 'sat' (the fast
    SMMULR path, full clamp range: SSAT; shifts in [-22, -1], where the
    assembly folds the output offset into the rounding), 'sat_lo' (the same
    with output offset -128: no sign term), 'sat_deep' (the
    same with a channel shifted right by more than 22), 'clamp' (fast path, a
    ReLU-like clamp), 'general' (extreme scales and left shifts)."""
    in_h, in_w = hw
    out_h, out_w = (in_h - 1) // stride + 1, (in_w - 1) // stride + 1
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=1, k_w=1,
             stride_h=stride, stride_w=stride, dilation_h=1, dilation_w=1, pad_top=0, pad_left=0,
             input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
             per_channel=1, filter=rand_i8(rng, out_c * in_c),
             bias=rng.integers(-20000, 20000, out_c).astype(np.int32))
    if mode == "sat_lo":
        p["output_offset"] = -128
    if mode in ("sat", "sat_lo", "sat_deep"):
        p["act_min"], p["act_max"] = -128, 127
    else:
        lo = max(p["output_offset"], -128)
        p["act_min"], p["act_max"] = lo, int(min(127, lo + rng.integers(20, 120)))
    p["multiplier"], p["shift"] = rand_requant(rng, out_c, True, extreme=mode == "general")
    if mode == "general":  # at least one left shift and a bias that can reach 2^30
        p["shift"][0], p["bias"][0] = 3, 1 << 30
    if mode == "sat_deep":  # one channel 2^-6 .. 2^-2 of its usual scale
        p["shift"] = np.asarray(p["shift"]).copy()
        p["shift"][out_c // 2] = -int(rng.integers(23, 27))
    if mode in ("sat", "sat_lo"):
        assert np.all((np.asarray(p["shift"]) >= -22) & (np.asarray(p["shift"]) <= -1))
    want = 1 if mode == "general" else arm_dsp.FAST_REQUANT
    assert arm_dsp.prepared_params("conv2d_s8", p)["per_channel"] == want, (mode, _short(p))
    return p


# (in_c, out_c, (in_h, in_w), stride): pixel counts below 6 (2-pixel blocks
# only), multiples of 6 and every remainder 1-5 (3-5: 3 columns, then pairs);
# K a multiple of 4 or not; groups of 4 products 1 to 32, so that the groups
# after a channel's first leave every remainder of the assembly's unrolled
# loops (8 times for 6 columns, 4 for 3), and whole passes of them; output
# channels odd, even, around the 16-channel chunk.
POINTWISE_SHAPES = [
    (8, 16, (2, 3), 1), (16, 32, (6, 6), 1), (5, 7, (1, 5), 1), (3, 1, (1, 6), 1), (4, 2, (1, 7), 1),
    (13, 17, (3, 3), 1), (28, 15, (4, 2), 1), (36, 33, (5, 5), 1), (17, 16, (2, 7), 1), (64, 64, (5, 5), 1),
    (48, 8, (4, 5), 1), (1, 3, (3, 4), 1), (24, 48, (7, 7), 2), (32, 31, (9, 8), 2), (128, 40, (3, 3), 1),
    (2, 5, (4, 4), 1), (11, 6, (2, 3), 1), (44, 9, (3, 4), 1), (68, 7, (2, 6), 1), (36, 12, (3, 5), 1),
    (12, 11, (1, 11), 1), (40, 18, (1, 17), 1), (6, 4, (2, 5), 1), (96, 5, (1, 9), 1),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("in_c,out_c,hw,stride", POINTWISE_SHAPES)
def test_pointwise_blocks_of_six(lib, in_c, out_c, hw, stride, mode):
    rng = rng_for("dsp-pw6", in_c, out_c, *hw, stride, mode)
    p = pointwise_params(rng, in_c, out_c, hw, mode, stride)
    variant = arm_dsp.select(_step("conv2d_s8", p))
    assert variant.function == "mcf_dsp_conv2d_1x1_s8"
    size = hw[0] * hw[1] * in_c
    for x in (np.full(size, -128, np.int8), np.full(size, 127, np.int8), rand_i8(rng, size)):
        check_dsp(lib, "conv2d_s8", p, x)


# k x k layers in the 6-pixel blocks (6 columns of at most arm_dsp.KXK_BLOCK_BYTES) and past them:
# in_c, out_c, (in_h, in_w), (k_h, k_w), stride, (pad_top, pad_left), dilation. First layers over 3
# channels (3x3 stride 2 with the padding at the bottom and right only, 3x3 stride 1), a 10x4 window
# over 1 channel, in_c a multiple of 4 (rows expanded straight), K > 64 with in_c not (im2col), a
# dilation, an even window, K = 168 (the largest 6 columns) and K = 180 (2 columns), odd out_c.
KXK_SHAPES = [
    (3, 8, (13, 14), (3, 3), 2, (0, 0), 1), (3, 16, (9, 9), (3, 3), 1, (1, 1), 1),
    (1, 9, (15, 6), (10, 4), 2, (4, 1), 1), (16, 5, (6, 7), (3, 3), 1, (1, 1), 1),
    (4, 7, (8, 9), (5, 5), 2, (2, 2), 1), (14, 3, (5, 4), (3, 3), 1, (1, 1), 1),
    (3, 6, (9, 10), (3, 3), 1, (2, 2), 2), (5, 3, (7, 7), (2, 3), 1, (0, 1), 1),
    (56, 4, (4, 4), (1, 3), 1, (0, 1), 1), (20, 4, (5, 5), (3, 3), 1, (1, 1), 1),
    # kernel rows of one word (expand_rows, expand_rows_cut): cut 2 bytes on either side; 2 channels; rows of
    # fewer than 4 bytes (the byte-wise fallback); one channel with dilation 2 down the rows (and along them)
    (1, 4, (12, 7), (5, 4), 1, (2, 2), 1), (2, 6, (7, 5), (3, 2), 1, (1, 1), 1),
    (2, 3, (5, 1), (2, 2), 1, (1, 1), 1), (4, 5, (6, 3), (3, 1), 2, (1, 0), 2),
]


def kxk_params(rng, in_c, out_c, hw, k, stride, pads, dilation, mode):
    """A k x k layer of the shape given, its requantization as pointwise_params' `mode`."""
    p = pointwise_params(rng, in_c, out_c, (1, 1), mode)
    eff_h, eff_w = (k[0] - 1) * dilation + 1, (k[1] - 1) * dilation + 1
    p.update(in_h=hw[0], in_w=hw[1], k_h=k[0], k_w=k[1], stride_h=stride, stride_w=stride, dilation_h=dilation,
             dilation_w=dilation, pad_top=pads[0], pad_left=pads[1],
             out_h=(hw[0] + 2 * pads[0] + 1 - eff_h) // stride + 1, out_w=(hw[1] + 2 * pads[1] + 1 - eff_w) // stride + 1,
             filter=rand_i8(rng, out_c * k[0] * k[1] * in_c))
    assert arm_dsp.prepared_params("conv2d_s8", p)["per_channel"] == (1 if mode == "general" else arm_dsp.FAST_REQUANT)
    return p


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", KXK_SHAPES)
def test_kxk_blocks_of_six(lib, shape, mode):
    in_c, out_c, hw, k, stride, pads, dilation = shape
    rng = rng_for("dsp-kxk6", *shape[:2], *hw, *k, stride, *pads, dilation, mode)
    p = kxk_params(rng, *shape, mode)
    kp = (k[0] * k[1] * in_c + 3) // 4 * 4
    columns = 6 if 12 * kp <= arm_dsp.KXK_BLOCK_BYTES else 2
    assert arm_dsp.select(_step("conv2d_s8", p)).scratch == columns * 2 * kp
    size = hw[0] * hw[1] * in_c
    for x in (np.full(size, -128, np.int8), np.full(size, 127, np.int8), rand_i8(rng, size)):
        check_dsp(lib, "conv2d_s8", p, x)


def test_pointwise_scratch_is_six_columns_only_with_six_pixels():
    """The planned scratch: 6 int16 columns of Kp when a block of 6 pixels
    exists, else the 2 columns of the pixel pairs."""
    rng = rng_for("dsp-pw6-scratch")
    for hw, columns in (((1, 5), 2), ((2, 3), 6), ((3, 3), 6), ((1, 1), 2)):
        p = pointwise_params(rng, 10, 3, hw, "sat")
        assert arm_dsp.select(_step("conv2d_s8", p)).scratch == columns * 2 * 12


# ------------------------------------- the same layers on Cortex-M (QEMU)

def _c_array(name: str, ctype: str, values) -> str:
    body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
    return f"static const {ctype} {name}[] = {{{body}}};\n"


def _program(decls: list[str], calls: list[str], max_in: int, max_out: int, scratch: int) -> str:
    """The Cortex-M program around the layers' declarations and calls: the
    input, output (word-aligned) and scratch buffers, semihosting files."""
    return f"""#include <stdint.h>
#include <string.h>
#include "semihost.h"
#include "mcuforge/kernels_arm_dsp.h"

uint64_t mcuforge_ticks(void);
{''.join(decls)}
static union {{ int32_t align; int8_t b[{max_in} + 4]; }} in_buf;
static union {{ int32_t align; int8_t b[{max_out} + 4]; }} out_buf;
#define output out_buf.b
static union {{ int32_t align; int8_t b[{scratch + 64}]; }} scratch;
static char status[1];

static char *next_word(char *s)
{{
    while (*s && *s != ' ') s++;
    while (*s == ' ') *s++ = 0;
    return s;
}}

int main(void)
{{
    int in, out, i;
{qemu.open_files("in", "out")}{''.join(calls)}    sh_close(in);
    sh_close(out);
    return 0;
}}
"""


def _run_on_cortex_m(target: str, tmp_path, program: str, source: str, cases: list, inputs: list,
                     expected: list, needs: tuple = ()) -> None:
    """Build `program` with the runtime file `source` (and the files `needs`)
    for `target`, run it under QEMU on the inputs and compare each case's
    output and status byte with `expected` (describe(case) names a case in a
    failure)."""
    t = qemu.get_target(target)
    src = tmp_path / "harness.c"
    src.write_text(program)
    elf = tmp_path / "layers.elf"
    d = qemu.TARGETS_DIR
    cmd = [qemu.ARM_GCC, *t.cflags, "-O2", *qemu.WARNING_FLAGS, "-ffunction-sections", "-fdata-sections",
           f"-I{RUNTIME_INCLUDE_DIR}", f"-I{RUNTIME_SRC_DIR}", f"-I{d}", str(src), str(RUNTIME_SRC_DIR / source),
           *(str(RUNTIME_SRC_DIR / n) for n in needs),
           str(d / "startup.c"), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", f"-L{d}",
           f"-T{d / t.linker_script}", "-Wl,--gc-sections", "-o", str(elf)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    _console, raw = qemu.run_image(t, elf, b"".join(x.tobytes() for x in inputs))
    got = np.frombuffer(raw, dtype=np.int8)
    assert got.size == sum(e.size for e in expected)
    start = 0
    for case, e in zip(cases, expected):
        g = got[start:start + e.size]
        assert g[-1] == 0, f"status {g[-1]} (99: wrote past the scratch) for {case}"
        assert np.array_equal(g, e), f"{np.count_nonzero(g != e)} bytes differ on {target} for {case}"
        start += e.size


def cortex_m_harness(cases: list[tuple[dict, int]], variants=None, misalign: bool = True) -> str:
    """A Cortex-M program running mcf_dsp_conv2d_[1x1_]s8 on each (params,
    input size) in turn: inputs read from the semihosting input file (every
    fifth case's 2 bytes past a word boundary, the rest aligned as arena
    buffers are), outputs and a status byte per case written to the output
    file; the scratch is checked for writes past its planned size."""
    ints = ("in_h in_w in_c out_h out_w out_c k_h k_w stride_h stride_w dilation_h dilation_w pad_top pad_left "
            "input_offset output_offset act_min act_max per_channel").split()
    decls, calls = [], []
    variants = variants or [arm_dsp.select(_step("conv2d_s8", p)) for p, _ in cases]
    biggest = max(max(v.scratch for v in variants), 4)
    max_in = max(n for _, n in cases)
    max_out = max(p["out_h"] * p["out_w"] * p["out_c"] for p, _ in cases)
    for i, ((p, n_in), v) in enumerate(zip(cases, variants)):
        q = arm_dsp.prepared_params("conv2d_s8", p, v)
        decls.append(_c_array(f"filter{i}", "int32_t", q["filter"]) + _c_array(f"bias{i}", "int32_t", q["bias"])
                     + _c_array(f"mult{i}", "int32_t", q["multiplier"]) + _c_array(f"shift{i}", "int32_t", q["shift"]))
        fields = ", ".join(f".{f} = {int(q[f])}" for f in ints)
        records = "NULL"
        if q.get("pw_requant") is not None:
            decls.append(_c_array(f"pw_requant{i}", "int32_t", q["pw_requant"]))
            records = f"pw_requant{i}"
        decls.append(f"static const mcf_conv2d_params p{i} = {{{fields}, .filter = (const int8_t *)(const void *)"
                     f"filter{i}, .bias = bias{i}, .multiplier = mult{i}, .shift = shift{i}, "
                     f".pw_requant = {records}}};\n")
        out_size = p["out_h"] * p["out_w"] * p["out_c"]
        at = 2 if i % 5 == 4 and misalign else 0
        calls.append(f"""    if (sh_read(in, in_buf.b + {at}, {n_in}) != 0) return 8;
    memset(scratch.b, 0x2D, sizeof scratch.b);
    status[0] = (char){v.function}(&p{i}, in_buf.b + {at}, output, scratch.b);
    for (i = {v.scratch}; i < (int)sizeof scratch.b; ++i) if (scratch.b[i] != 0x2D) status[0] = 99;
    if (sh_write(out, output, {out_size}) != 0 || sh_write(out, status, 1) != 0) return 5;
""")
    return _program(decls, calls, max_in, max_out, biggest)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_pointwise_and_im2col_on_cortex_m(target, tmp_path):
    """The kernels with their assembly (the 6-pixel block, the 2 x 2 block)
    on the real DSP instructions: every 1x1 shape and mode above, and k x k
    layers, bit-exact with the NumPy twin of the portable kernel."""
    cases, inputs, expected = [], [], []
    for in_c, out_c, hw, stride in POINTWISE_SHAPES:
        for mode in MODES:
            rng = rng_for("dsp-pw6-m", in_c, out_c, *hw, stride, mode)
            p = pointwise_params(rng, in_c, out_c, hw, mode, stride)
            cases.append(p)
    for shape in KXK_SHAPES:
        for mode in ("sat", "sat_lo", "sat_deep"):
            cases.append(kxk_params(rng_for("dsp-kxk6-m", *shape[:2], mode), *shape, mode))
    for seed in range(8):
        cases.append(conv_params(rng_for("dsp-conv-m", seed), extreme=seed % 4 == 3))
    for i, p in enumerate(cases):
        x = rand_i8(rng_for("dsp-m-x", i), p["in_h"] * p["in_w"] * p["in_c"])
        inputs.append(x)
        expected.append(np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)))
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x in zip(cases, inputs)]),
                     "mcf_dsp_matmul.c", [_short(p) for p in cases], inputs, expected)


# ------------------- depthwise 3x3 (assembly) and 5-7 wide (unrolled C) on Cortex-M (QEMU)

def dw3_params(rng, in_hw, channels, stride, pads, mode, k=(3, 3)):
    """A 3x3 depthwise layer (multiplier 1) with the given input size, stride
    (both axes), padding (top, bottom, left, right) and requantization: 'sat'
    (the assembly's mode: fast path, full clamp, shifts in [-22, -1]) or
    'clamp' (a ReLU-like clamp: the C rows)."""
    (in_h, in_w), (pt, pb, pl, pr) = in_hw, pads
    out_h, out_w = (in_h + pt + pb - k[0]) // stride + 1, (in_w + pl + pr - k[1]) // stride + 1
    out_zp = -128 if mode == "sat_lo" else int(rng.integers(-128, 128))
    p = dict(in_h=in_h, in_w=in_w, in_c=channels, out_h=out_h, out_w=out_w, out_c=channels, depth_multiplier=1,
             k_h=k[0], k_w=k[1], stride_h=stride, stride_w=stride, dilation_h=1, dilation_w=1, pad_top=pt,
             pad_left=pl, input_offset=int(rng.integers(-127, 129)), output_offset=out_zp, per_channel=1,
             filter=rand_i8(rng, k[0] * k[1] * channels), bias=rng.integers(-(1 << 16), 1 << 16, channels).astype(np.int32))
    if mode in ("sat", "sat_lo"):
        p["act_min"], p["act_max"] = -128, 127
    else:
        lo = max(out_zp, -128)
        p["act_min"], p["act_max"] = lo, int(min(127, lo + rng.integers(20, 120)))
    p["multiplier"], p["shift"] = rand_requant(rng, channels, True)
    assert arm_dsp.prepared_params("depthwise_conv2d_s8", p)["per_channel"] == arm_dsp.FAST_REQUANT
    if mode in ("sat", "sat_lo"):
        assert np.all((np.asarray(p["shift"]) >= -22) & (np.asarray(p["shift"]) <= -1))
    return p


# (in_h, in_w), channels, stride, (top, bottom, left, right): output widths
# 1 to 6 and 24 (odd: the assembly's last single pixel), no padding, 'same'
# padding, asymmetric padding (kernel rows in the padding read the row of
# zeros), strides 1 and 2 on odd and even sizes.
DW3_SHAPES = [
    ((6, 6), 8, 1, (1, 1, 1, 1)), ((6, 6), 4, 2, (0, 1, 0, 1)), ((3, 3), 12, 1, (1, 1, 1, 1)),
    ((5, 7), 4, 1, (0, 0, 0, 0)), ((7, 5), 8, 2, (1, 1, 1, 1)), ((3, 4), 4, 1, (0, 0, 0, 0)),
    ((1, 1), 4, 1, (1, 1, 1, 1)), ((2, 9), 4, 2, (1, 0, 0, 1)), ((4, 24), 4, 1, (1, 1, 1, 1)),
    ((9, 9), 4, 2, (0, 0, 0, 0)), ((3, 3), 4, 2, (1, 1, 1, 1)), ((5, 2), 8, 1, (2, 0, 1, 0)),
]


# Wider windows (the unrolled C rows, row_wide): (in_h, in_w), channels, stride,
# (top, bottom, left, right), (k_h, k_w); 5 and 7 taps wide, strides 1 and 2, odd
# and even output widths, kernel rows in the padding, a single kernel row.
DW_WIDE_SHAPES = [
    ((7, 7), 4, 1, (2, 2, 2, 2), (5, 5)), ((9, 8), 8, 2, (1, 2, 1, 2), (5, 5)),
    ((5, 11), 4, 1, (3, 3, 3, 3), (7, 7)), ((10, 9), 4, 2, (3, 3, 3, 3), (7, 7)),
    ((6, 6), 4, 1, (0, 0, 2, 2), (1, 5)), ((4, 13), 12, 2, (1, 1, 3, 3), (3, 7)),
    ((2, 5), 4, 1, (2, 2, 2, 2), (5, 5)), ((8, 3), 4, 1, (0, 0, 2, 2), (5, 5)),
]


@pytest.mark.parametrize("mode", ("sat", "sat_lo", "clamp"))
@pytest.mark.parametrize("shape", DW_WIDE_SHAPES)
def test_depthwise_wide_rows(lib, shape, mode):
    hw, channels, stride, pads, k = shape
    rng = rng_for("dsp-dw-wide", *hw, channels, stride, *pads, *k, mode)
    p = dw3_params(rng, hw, channels, stride, pads, mode, k)
    x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
    check_dsp(lib, "depthwise_conv2d_s8", p, x)
    if p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
        check_dsp(lib, "depthwise_conv2d_s8_inplace", p, x)


def dw3_harness(cases: list[tuple[str, dict]], variants=None) -> str:
    """A Cortex-M program running the arm-dsp depthwise kernel (normal or in
    place; the given variants, else select()'s) on each case in turn, like
    cortex_m_harness."""
    ints = ("in_h in_w in_c out_h out_w out_c depth_multiplier k_h k_w stride_h stride_w dilation_h dilation_w "
            "pad_top pad_left input_offset output_offset act_min act_max per_channel plane_transposed").split()
    decls, calls = [], []
    variants = variants or [arm_dsp.select(_step(kernel, p)) for kernel, p in cases]
    biggest = max(v.scratch for v in variants)
    max_in = max(p["in_h"] * p["in_w"] * p["in_c"] for _, p in cases)
    max_out = max(max(p["out_h"] * p["out_w"], p["in_h"] * p["in_w"]) * p["out_c"] for _, p in cases)
    for i, ((kernel, p), v) in enumerate(zip(cases, variants)):
        q = arm_dsp.prepared_params(kernel, p, v)
        decls.append(_c_array(f"filter{i}", "int32_t", q["filter"]) + _c_array(f"bias{i}", "int32_t", q["bias"])
                     + _c_array(f"mult{i}", "int32_t", q["multiplier"]) + _c_array(f"shift{i}", "int32_t", q["shift"]))
        fields = ", ".join(f".{f} = {int(q.get(f, 0))}" for f in ints)
        decls.append(f"static const mcf_depthwise_conv2d_params p{i} = {{{fields}, .filter = (const int8_t *)"
                     f"(const void *)filter{i}, .bias = bias{i}, .multiplier = mult{i}, .shift = shift{i}}};\n")
        n_in, out_size = p["in_h"] * p["in_w"] * p["in_c"], p["out_h"] * p["out_w"] * p["out_c"]
        if kernel.endswith("_inplace"):
            call = (f"memcpy(output, in_buf.b, {n_in});\n"
                    f"    status[0] = (char){v.function}(&p{i}, output, scratch.b);")
        else:
            call = f"status[0] = (char){v.function}(&p{i}, in_buf.b, output, scratch.b);"
        calls.append(f"""    if (sh_read(in, in_buf.b, {n_in}) != 0) return 8;
    memset(scratch.b, 0x2D, sizeof scratch.b);
    {call}
    for (i = {v.scratch}; i < (int)sizeof scratch.b; ++i) if (scratch.b[i] != 0x2D) status[0] = 99;
    if (sh_write(out, output, {out_size}) != 0 || sh_write(out, status, 1) != 0) return 5;
""")
    return _program(decls, calls, max_in, max_out, biggest)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_depthwise_unrolled_on_cortex_m(target, tmp_path):
    """The depthwise kernels with their 3x3 assembly (two pixels a step, a last
    odd one, kernel rows in the padding) and their unrolled 5- and 7-wide rows
    on the real DSP instructions, normal and in place, and the C rows of a
    narrower clamp: bit-exact with the NumPy twin of the portable kernel."""
    cases, inputs, expected = [], [], []
    for i, (hw, channels, stride, pads, k) in enumerate([s + ((3, 3),) for s in DW3_SHAPES] + DW_WIDE_SHAPES):
        for mode in ("sat", "sat_lo", "clamp"):
            rng = rng_for("dsp-dw3-m", i, mode)
            p = dw3_params(rng, hw, channels, stride, pads, mode, k)
            kernels = ["depthwise_conv2d_s8"]
            if p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
                kernels.append("depthwise_conv2d_s8_inplace")
            for kernel in kernels:
                x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
                cases.append((kernel, p))
                inputs.append(x)
                expected.append(np.append(KERNELS["depthwise_conv2d_s8"](p, x).reshape(-1), np.int8(0)))
    assert sum(k.endswith("_inplace") for k, _ in cases) >= 8
    _run_on_cortex_m(target, tmp_path, dw3_harness(cases), "mcf_dsp_depthwise_conv2d.c",
                     [f"{k} {_short(p)}" for k, p in cases], inputs, expected)
