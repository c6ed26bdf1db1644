"""Each arm-dsp kernel variant, one layer at a time, equals the NumPy twin of
the portable kernel (and so TFLM) byte for byte: odd sizes, odd channel
counts, every padding, stride and dilation, depth multipliers (those the
generator hands to the portable kernel are checked to be refused), in place.

The host build runs the plain-C implementation of the ACLE intrinsics
(mcf_acle.h), the same kernel code as on Cortex-M; the QEMU tests
(test_arm_dsp.py) run it on the real instructions."""
from __future__ import annotations

import ctypes as ct

import numpy as np
import pytest

from mcuforge.codegen import arm_dsp
from mcuforge.kernels import KERNELS
from mcuforge.ops import Step

from test_kernels import (P8, STRUCTS, _fill, _short, conv_params, fc_params, lib, rand_act,  # noqa: F401
                          rand_i8, rand_requant, rng_for)


def _step(kernel: str, params: dict) -> Step:
    return Step(node=None, kernel=kernel, params=params, inputs=[], outputs=[])


def run_dsp(lib, kernel: str, p: dict, x: np.ndarray) -> np.ndarray:
    """The arm-dsp variant the generator selects for (kernel, p), on guarded
    buffers; returns its output bytes."""
    variant = arm_dsp.select(_step(kernel, p))
    assert variant is not None, _short(p)
    keep: list = []
    prepared = arm_dsp.prepared_params(kernel, p)
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


def check_dsp(lib, kernel: str, p: dict, x: np.ndarray) -> None:
    expected = KERNELS[kernel](p, x)
    got = run_dsp(lib, kernel, p, x)
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
    assert arm_dsp.select(_step("add_s8", {})) is None


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
