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


def rows_of(p: dict, key: str = "rows"):
    vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == key]
    assert len(vs) == 1 and (vs[0].scratch == 0) == (key != "pw4"), _short(p)
    return vs[0]


def tail_cases():
    """The 1x1 shapes with 6 output pixels or more (the tail variant's): the
    columns in the output's tail, the last pixels as rows."""
    return [(p, x) for p, x in rows_cases() if p["out_h"] * p["out_w"] >= 6]


def rows_cases():
    for in_c, out_c, hw, stride in POINTWISE_SHAPES:
        for mode in MODES:
            rng = rng_for("dsp-pw-rows", in_c, out_c, *hw, stride, mode)
            p = pointwise_params(rng, in_c, out_c, hw, mode, stride)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])


def test_pointwise_rows_host(lib):
    for p, x in rows_cases():
        check_dsp(lib, "conv2d_s8", p, x, rows_of(p))
    for p, x in tail_cases():
        check_dsp(lib, "conv2d_s8", p, x, rows_of(p, "tail"))
    for p, x in rows_cases():
        check_dsp(lib, "conv2d_s8", p, x, rows_of(p, "pw4"))


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_pointwise_rows_on_cortex_m(target, tmp_path):
    """The 1x1 variants without scratch (rows, tail) and in 2 x 4 blocks (pw4,
    its assembly) on the real DSP instructions, every shape and mode."""
    cases = list(rows_cases()) + tail_cases() + list(rows_cases())
    keys = ["rows"] * len(list(rows_cases())) + ["tail"] * len(tail_cases()) + ["pw4"] * len(list(rows_cases()))
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x in cases],
                                                        [rows_of(p, k) for (p, _), k in zip(cases, keys)]),
                     "mcf_dsp_matmul.c", [_short(p) for p, _ in cases], [x for _, x in cases],
                     [np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)) for p, x in cases])


# ------------------- the planner's choice of variants respects the budgets

from pathlib import Path  # noqa: E402

import mcuforge  # noqa: E402
from mcuforge.codegen import variants as variant_choice  # noqa: E402

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def _model(name: str) -> Path:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the MLPerf Tiny models are not part of the repository)")
    return path


def _plan(model: Path, tmp_path, tag: str, **budget):
    return mcuforge.compile(str(model), out=str(tmp_path / tag), progress=False, **budget).plan


def _fastest(plan, step) -> str:
    opts = variant_choice.options(step, plan.graph.tensors[step.outputs[0]].size)
    return min(opts, key=lambda o: o.cycles).key


def test_variants_within_sram_budget(tmp_path):
    """No budget: arm-dsp never grows the arena beyond the portable plan's (the
    planner takes slower variants on the peak layers). A budget: the arena stays
    within it, and a generous one gives every layer its fastest variant."""
    model = _model("vww_96_int8.tflite")
    portable = _plan(model, tmp_path, "portable", kernels="portable")
    plain = _plan(model, tmp_path, "dsp", kernels="arm-dsp")
    assert plain.arena_size <= portable.arena_size
    assert plain.extra["variant_sram_limit"] == portable.arena_size
    chosen = plain.extra["variants"]
    assert set(chosen) == {s.name for s in plain.steps}
    slower = [s for s in plain.steps if chosen[s.name] != _fastest(plain, s)]
    assert slower, "VWW's peak layers need the arena the faster variants' scratch would take"
    for s in slower:
        assert "beyond the portable plan's arena" in plain.extra["variant_reasons"][s.name]
    roomy = _plan(model, tmp_path, "roomy", kernels="arm-dsp", sram_budget=1 << 20)
    assert all(roomy.extra["variants"][s.name] == _fastest(roomy, s) for s in roomy.steps)
    assert roomy.arena_size > portable.arena_size
    assert "plane" in roomy.extra["variants"].values()
    budget = (portable.arena_size + roomy.arena_size) // 2
    mid = _plan(model, tmp_path, "mid", kernels="arm-dsp", sram_budget=budget)
    assert mid.arena_size <= budget
    faster = sum(mid.extra["variants"][s.name] == _fastest(mid, s) for s in mid.steps)
    assert sum(chosen[s.name] == _fastest(plain, s) for s in plain.steps) <= faster
    # the plan's scratch is what the chosen variants need
    for s in mid.steps:
        assert s.scratch == arm_dsp.scratch_size(s, mid.extra["variants"])


def test_add_tables_within_flash_budget(tmp_path):
    """The ADD tables (2 KB of flash each) only where --flash-budget leaves room
    beside the weights."""
    model = _model("pretrainedResnet_quant.tflite")
    free = _plan(model, tmp_path, "free", kernels="arm-dsp", sram_budget=1 << 20)
    adds = [s for s in free.steps if s.kernel == "add_s8"]
    assert adds and all(free.extra["variants"][s.name] == "default" for s in adds)
    weights = free.weight_bytes
    for room in (0, 1):
        plan = _plan(model, tmp_path, f"flash{room}", kernels="arm-dsp", sram_budget=1 << 20,
                     flash_budget=weights + room * variant_choice.ADD_TABLE_BYTES)
        tables = [s for s in plan.steps if s.kernel == "add_s8" and plan.extra["variants"][s.name] != "portable"]
        assert len(tables) == room
        for s in plan.steps:
            if s.kernel == "add_s8" and s not in tables:
                assert "--flash-budget" in plan.extra["variant_reasons"][s.name]
        assert arm_dsp.fallback_layers(plan) == [s.name for s in plan.steps
                                                 if arm_dsp.variant(plan, s) is None and s.kernel != "copy_tile_s8"]


# ------------------- the k x k convolution without scratch (columns in the output's tail, then the dead input)

import ctypes as ct  # noqa: E402

from test_arm_dsp_kernels import kxk_params  # noqa: E402
from test_kernels import P8, STRUCTS, _fill  # noqa: E402

# in_c, out_c, (h, w), (k_h, k_w), stride, (pad_top, pad_left), dilation
REUSE_SHAPES = [
    (16, 16, (32, 32), (3, 3), 1, (1, 1), 1), (8, 8, (24, 24), (3, 3), 1, (1, 1), 1),
    (3, 16, (20, 20), (3, 3), 2, (1, 1), 1), (5, 7, (30, 13), (3, 3), 1, (0, 0), 1),
    (4, 6, (60, 11), (5, 5), 1, (2, 2), 1), (4, 9, (27, 15), (3, 3), 2, (0, 0), 2),
    (16, 32, (20, 20), (3, 3), 1, (1, 1), 1), (7, 5, (40, 9), (3, 3), 1, (1, 1), 1),
]


def reuse_cases():
    for shape in REUSE_SHAPES:
        for mode in ("sat", "sat_lo"):  # the modes with records (the 6-pixel blocks on Cortex-M)
            rng = rng_for("dsp-kxk-reuse", *shape[:2], *shape[2], mode)
            p = kxk_params(rng, *shape, mode)
            vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "reuse"]
            assert len(vs) == 1 and vs[0].scratch == 0, _short(p)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]), vs[0]


def test_conv2d_reuse_host(lib):
    """Bit-exact, on guarded buffers; the input is overwritten (it dies with
    the layer), nothing outside input and output is."""
    for p, x, v in reuse_cases():
        keep: list = []
        q = arm_dsp.prepared_params("conv2d_s8", p)
        q["filter"] = q["filter"].astype("<i4").view(np.int8)
        s = _fill(STRUCTS["conv2d_s8"], q, keep)
        expected = KERNELS["conv2d_s8"](p, x).reshape(-1)
        xin = np.concatenate([x, np.full(64, 0x3C, dtype=np.int8)])
        out = np.full(expected.size + 64, 0x55, dtype=np.int8)
        status = getattr(lib, v.function)(ct.byref(s), xin.ctypes.data_as(P8), out.ctypes.data_as(P8), None)
        assert status == 0, _short(p)
        assert np.all(out[expected.size:] == 0x55) and np.all(xin[x.size:] == 0x3C), _short(p)
        assert np.array_equal(out[:expected.size], expected), _short(p)


def test_reuse_needs_room():
    """No reuse variant where the input's dead rows cannot hold the columns."""
    rng = rng_for("dsp-kxk-reuse-no")
    p = kxk_params(rng, 16, 4, (4, 4), (3, 3), 1, (1, 1), 1, "sat")
    assert "reuse" not in [v.key for v in arm_dsp.candidates(_step("conv2d_s8", p))]


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_reuse_on_cortex_m(target, tmp_path):
    cases = list(reuse_cases())
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x, _ in cases], [v for *_, v in cases],
                                                        misalign=False),
                     "mcf_dsp_matmul.c", [_short(p) for p, *_ in cases], [x for _, x, _ in cases],
                     [np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)) for p, x, _ in cases])


# ------------------- the k x k convolution in the 2 x 4 blocks

from test_arm_dsp_kernels import KXK_SHAPES  # noqa: E402


def kxk_pw4_cases():
    shapes = KXK_SHAPES + [s[:2] + ((9, 8),) + s[3:] for s in REUSE_SHAPES] + [(32, 8, (6, 6), (3, 3), 1, (1, 1), 1)]
    for shape in shapes:
        for mode in ("sat", "sat_lo", "sat_deep", "clamp"):
            rng = rng_for("dsp-kxk-pw4", *shape[:2], *shape[2], *shape[3], mode)
            p = kxk_params(rng, *shape, mode)
            vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "pw4"]
            if arm_dsp.prepared_params("conv2d_s8", p).get("pw_requant") is None:
                assert not vs, _short(p)
                continue
            assert len(vs) == 1, _short(p)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]), vs[0]


def test_conv2d_pw4_host(lib):
    cases = list(kxk_pw4_cases())
    assert len(cases) >= 20
    for p, x, v in cases:
        check_dsp(lib, "conv2d_s8", p, x, v)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_pw4_on_cortex_m(target, tmp_path):
    cases = list(kxk_pw4_cases())
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x, _ in cases], [v for *_, v in cases]),
                     "mcf_dsp_matmul.c", [_short(p) for p, *_ in cases], [x for _, x, _ in cases],
                     [np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)) for p, x, _ in cases])
