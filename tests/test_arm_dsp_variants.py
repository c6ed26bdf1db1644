"""The arm-dsp kernels' other variants (the depthwise plane: the whole padded
input of 4 channels in the scratch) bit-exact with the NumPy twin of the
portable kernel (and so TFLM), on the host and under QEMU on Cortex-M4/M7;
and the planner's choice of each layer's variant (codegen/variants.py)
within the SRAM and flash budgets."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.codegen import arm_dsp
from mcuforge.kernels import KERNELS

from marks import needs_qemu
from test_arm_dsp_kernels import (DW3_SHAPES, _run_on_cortex_m, _short, _step, check_dsp, dw3_harness, dw3_params,
                                  rand_i8, rng_for)
from test_kernels import lib  # noqa: F401

# the 3x3 shapes above plus a tall one (rows of the plane far below the ring) and a dilated one
PLANE_SHAPES = [s + ((3, 3),) for s in DW3_SHAPES] + [((11, 5), 8, 1, (1, 1, 1, 1), (3, 3)),
                                                      ((10, 6), 4, 2, (1, 0, 1, 0), (3, 3))]


def plane_of(kernel: str, p: dict):
    vs = [v for v in arm_dsp.candidates(_step(kernel, p)) if v.key == "plane"]
    assert len(vs) == 1, _short(p)
    return vs[0]


def plane_cases():
    for i, (hw, channels, stride, pads, k) in enumerate(PLANE_SHAPES):
        for mode in ("sat", "sat_lo", "clamp"):
            rng = rng_for("dsp-dw-plane", i, mode)
            p = dw3_params(rng, hw, channels, stride, pads, mode, k)
            x = rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
            yield "depthwise_conv2d_s8", p, x
            if p["out_h"] * p["out_w"] <= p["in_h"] * p["in_w"]:
                yield "depthwise_conv2d_s8_inplace", p, x


def test_depthwise_plane_host(lib):
    cases = list(plane_cases())
    assert sum(k.endswith("_inplace") for k, _, _ in cases) >= 8
    for kernel, p, x in cases:
        v = plane_of(kernel, p)
        assert v.scratch >= arm_dsp.select(_step(kernel, p)).scratch
        check_dsp(lib, kernel, p, x, v)


def test_plane_only_where_it_fits():
    rng = rng_for("dsp-dw-plane-no")
    p = dw3_params(rng, (6, 6), 4, 1, (1, 1, 1, 1), "sat", (5, 5))
    assert [v.key for v in arm_dsp.candidates(_step("depthwise_conv2d_s8", p))] == ["default"]


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_depthwise_plane_on_cortex_m(target, tmp_path):
    """The plane variant with its 3x3 assembly rows on the real DSP
    instructions, normal and in place, every mode."""
    cases, variants, inputs, expected = [], [], [], []
    for kernel, p, x in plane_cases():
        cases.append((kernel, p))
        variants.append(plane_of(kernel, p))
        inputs.append(x)
        expected.append(np.append(KERNELS["depthwise_conv2d_s8"](p, x).reshape(-1), np.int8(0)))
    _run_on_cortex_m(target, tmp_path, dw3_harness(cases, variants), "mcf_dsp_depthwise_conv2d.c",
                     [f"{k} {_short(p)}" for k, p in cases], inputs, expected)


# ------------------- the 1x1 convolution without scratch (fully connected rows)

from test_arm_dsp_kernels import MODES, POINTWISE_SHAPES, cortex_m_harness, pointwise_params  # noqa: E402


def rows_of(p: dict):
    vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "rows"]
    assert len(vs) == 1 and vs[0].scratch == 0, _short(p)
    return vs[0]


def rows_cases():
    for in_c, out_c, hw, stride in POINTWISE_SHAPES:
        for mode in MODES:
            rng = rng_for("dsp-pw-rows", in_c, out_c, *hw, stride, mode)
            p = pointwise_params(rng, in_c, out_c, hw, mode, stride)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])


def test_pointwise_rows_host(lib):
    for p, x in rows_cases():
        check_dsp(lib, "conv2d_s8", p, x, rows_of(p))


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_pointwise_rows_on_cortex_m(target, tmp_path):
    cases = list(rows_cases())
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x in cases], [rows_of(p) for p, _ in cases]),
                     "mcf_dsp_matmul.c", [_short(p) for p, _ in cases], [x for _, x in cases],
                     [np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)) for p, x in cases])
