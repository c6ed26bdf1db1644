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
