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

# the 3x3 shapes above plus a tall one (rows of the plane far below the ring), one more, and maps of
# short rows the plane holds transposed (KWS's 25 x 5; stride 2; padding on one side only)
PLANE_SHAPES = [s + ((3, 3),) for s in DW3_SHAPES] + [((11, 5), 8, 1, (1, 1, 1, 1), (3, 3)),
                                                      ((10, 6), 4, 2, (1, 0, 1, 0), (3, 3)),
                                                      ((25, 5), 8, 1, (1, 1, 1, 1), (3, 3)),
                                                      ((13, 4), 4, 2, (0, 1, 1, 0), (3, 3)),
                                                      ((9, 3), 12, 1, (2, 0, 0, 1), (3, 3))]


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


def test_plane_transposed_where_rows_are_short():
    """A map of short rows goes into the plane transposed (cheaper per-row
    work); a square or wide one does not; both ways bit-exact (above)."""
    rng = rng_for("dsp-dw-plane-t")
    kws = dw3_params(rng, (25, 5), 64, 1, (1, 1, 1, 1), "sat", (3, 3))
    wide = dw3_params(rng, (5, 25), 64, 1, (1, 1, 1, 1), "sat", (3, 3))
    square = dw3_params(rng, (12, 12), 8, 2, (0, 1, 0, 1), "sat", (3, 3))
    assert arm_dsp.plane_transposed(kws) and not arm_dsp.plane_transposed(wide)
    assert not arm_dsp.plane_transposed(square)
    for p, t in ((kws, 1), (wide, 0), (square, 0)):  # the generator's choice is the field the C follows
        kernel = "depthwise_conv2d_s8"
        assert arm_dsp.prepared_params(kernel, p, plane_of(kernel, p)).get("plane_transposed", 0) == t
    assert sum(arm_dsp.plane_transposed(p) for _, p, _ in plane_cases()) >= 12


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


def test_peak_stem_on_a_model_input_keeps_the_blocks(tmp_path):
    """MobileNetV3-small's 3x3 stem is the arena's peak and reads the model's
    input, which no variant may overwrite: without a budget it takes a tail
    variant (no scratch, the input kept) rather than the portable kernel, and
    the arena stays the portable plan's."""
    from mcuforge import zoo

    model = tmp_path / "mbv3.tflite"
    model.write_bytes(zoo.mbv3_small_tflite())
    portable = _plan(model, tmp_path, "portable", kernels="portable")
    plan = _plan(model, tmp_path, "dsp", kernels="arm-dsp")
    stem = plan.steps[0]
    assert stem.kernel == "conv2d_s8" and stem.params["in_c"] == 3 and stem.inputs[0] in plan.graph.inputs
    assert plan.extra["variants"][stem.name] in ("tail", "tailw"), plan.extra["variant_reasons"][stem.name]
    assert plan.arena_size == portable.arena_size


def test_add_tables_within_flash_budget(tmp_path):
    """The ADD tables (2 KB of flash each) only where --flash-budget leaves room
    beside the weights."""
    model = _model("pretrainedResnet_quant.tflite")
    free = _plan(model, tmp_path, "free", kernels="arm-dsp", sram_budget=1 << 20)
    adds = [s for s in free.steps if s.kernel == "add_s8"]
    assert adds and all(free.extra["variants"][s.name] == "default" for s in adds)
    weights = free.weight_bytes
    table = arm_dsp.table_bytes("add_s8", adds[0].params)  # 513 words
    assert table == 4 * 513

    def extra_flash(plan):  # flash of the chosen variants beyond the weights: tables, widened filters
        return sum(next(o.flash for o in variant_choice.options(s, plan.graph.tensors[s.outputs[0]].size, True)
                        if o.key == plan.extra["variants"][s.name]) for s in plan.steps)

    for room in (0, 1):
        plan = _plan(model, tmp_path, f"flash{room}", kernels="arm-dsp", sram_budget=1 << 20,
                     flash_budget=weights + variant_choice.CODE_RESERVE + room * table)
        tables = [s for s in plan.steps if s.kernel == "add_s8" and plan.extra["variants"][s.name] != "portable"]
        assert len(tables) <= room and 0 < extra_flash(plan) <= table if room else \
            extra_flash(plan) == 0
        for s in plan.steps:
            if s.kernel == "add_s8" and s not in tables:
                assert "--flash-budget" in plan.extra["variant_reasons"][s.name]
        assert arm_dsp.fallback_layers(plan) == [s.name for s in plan.steps
                                                 if arm_dsp.variant(plan, s) is None and s.kernel != "copy_tile_s8"]


def harness_call(call: str, at: int, n_in: int, n_out: int) -> str:
    """One case of a Cortex-M harness (_program): n_in input bytes read at in_buf + at, the kernel `call` (its
    status kept; no scratch planned, so none written), n_out output bytes and the status written."""
    return f"""    if (sh_read(in, in_buf.b + {at}, {n_in}) != 0) return 8;
    status[0] = (char){call};
    for (i = 0; i < 4; ++i) if (scratch.b[i] != 0) status[0] = 99;
    if (sh_write(out, output, {n_out}) != 0 || sh_write(out, status, 1) != 0) return 5;
"""


def kernel_on_cortex_m(target, tmp_path, kernel: str, function: str, source: str, cases, decl,
                       last: str = "scratch.b", needs: tuple = ()) -> None:
    """(params, input) cases of a one-input kernel through `function` (runtime file `source`, with the files
    `needs`) under QEMU, against the NumPy twin; decl(i, params) declares case i's struct s{i}; the last
    argument `last` (with {i}: the case's); inputs at any alignment."""
    expected = [np.append(KERNELS[kernel](p, x).reshape(-1), np.int8(0)) for p, x in cases]
    calls = [harness_call(f"{function}(&s{i}, in_buf.b + {i % 2}, output, {last.format(i=i)})", i % 2, x.size,
                          e.size - 1) for i, ((_, x), e) in enumerate(zip(cases, expected))]
    program = _program([decl(i, p) for i, (p, _) in enumerate(cases)], calls, max(x.size for _, x in cases),
                       max(e.size for e in expected), 4)
    _run_on_cortex_m(target, tmp_path, program, source, [_short(p) for p, _ in cases], [x for _, x in cases],
                     expected, needs)


def conv_on_cortex_m(target, tmp_path, cases, misalign=True) -> None:
    """(params, input, variant) convolutions through their variants under QEMU, against the NumPy twin."""
    _run_on_cortex_m(target, tmp_path, cortex_m_harness([(p, x.size) for p, x, _ in cases], [v for *_, v in cases],
                                                        misalign=misalign),
                     "mcf_dsp_matmul.c", [_short(p) for p, *_ in cases], [x for _, x, _ in cases],
                     [np.append(KERNELS["conv2d_s8"](p, x).reshape(-1), np.int8(0)) for p, x, _ in cases])


# ------------------- the k x k convolution without scratch (columns in the output's tail, then the dead input)

import ctypes as ct  # noqa: E402

from test_arm_dsp_kernels import KXK_SHAPES, kxk_params, pointwise_params  # noqa: E402
from test_kernels import P8, STRUCTS, _fill  # noqa: E402

# in_c, out_c, (h, w), (k_h, k_w), stride, (pad_top, pad_left), dilation
REUSE_SHAPES = [
    (16, 16, (32, 32), (3, 3), 1, (1, 1), 1), (8, 8, (24, 24), (3, 3), 1, (1, 1), 1),
    (3, 16, (20, 20), (3, 3), 2, (1, 1), 1), (5, 7, (30, 13), (3, 3), 1, (0, 0), 1),
    (4, 6, (60, 11), (5, 5), 1, (2, 2), 1), (4, 9, (27, 15), (3, 3), 2, (0, 0), 2),
    (16, 32, (20, 20), (3, 3), 1, (1, 1), 1), (7, 5, (40, 9), (3, 3), 1, (1, 1), 1),
    # a 1x1 layer padded below and right (out_h = in_h + 1): not one the 1x1 kernels take
    (16, 12, (25, 5), (1, 1), 1, (0, 0), 1),
]
# 1x1 layers (their columns read straight from the input words): in_c, out_c, (h, w), stride; KWS's shape,
# in_c % 4 != 0, stride 2
REUSE_POINTWISE = [(64, 64, (25, 5), 1), (13, 10, (20, 7), 1), (16, 24, (21, 21), 2)]


def reuse_cases(key: str = "reuse"):
    """key: reuse, or reusew (its blocks on the filter widened to int16 offline)."""
    for shape in REUSE_SHAPES + REUSE_POINTWISE:
        for mode in ("sat", "sat_lo"):  # the modes with records (the 6-pixel blocks on Cortex-M)
            rng = rng_for("dsp-kxk-reuse", *shape[:2], *shape[2], mode)
            if len(shape) == 4:
                p = pointwise_params(rng, *shape[:3], mode, stride=shape[3])
                assert arm_dsp._pointwise(p)
            else:
                p = kxk_params(rng, *shape, mode)
                assert not arm_dsp._pointwise(p)
            vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == key]
            assert len(vs) == 1 and vs[0].scratch == 0 and vs[0].wide == (key == "reusew"), _short(p)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]), vs[0]


@pytest.mark.parametrize("key", ["reuse", "reusew"])
def test_conv2d_reuse_host(lib, key):
    """Bit-exact, on guarded buffers; the input is overwritten (it dies with
    the layer), nothing outside input and output is."""
    for p, x, v in reuse_cases(key):
        check_input_dying(lib, p, x, v)


def check_input_dying(lib, p, x, v, keeps_input: bool = False) -> None:
    """A variant without scratch that may overwrite its input: bit-exact, on
    guarded buffers, nothing outside input and output written (nor the
    input, when keeps_input)."""
    keep: list = []
    q = arm_dsp.prepared_params("conv2d_s8", p, v)
    q["filter"] = q["filter"].astype("<i4").view(np.int8)
    s = _fill(STRUCTS["conv2d_s8"], q, keep)
    expected = KERNELS["conv2d_s8"](p, x).reshape(-1)
    xin = np.concatenate([x, np.full(64, 0x3C, dtype=np.int8)])
    out = np.full(expected.size + 64, 0x55, dtype=np.int8)
    status = getattr(lib, v.function)(ct.byref(s), xin.ctypes.data_as(P8), out.ctypes.data_as(P8), None)
    assert status == 0, _short(p)
    assert np.all(out[expected.size:] == 0x55) and np.all(xin[x.size:] == 0x3C), _short(p)
    assert np.array_equal(out[:expected.size], expected), _short(p)
    assert not keeps_input or np.array_equal(xin[:x.size], x), _short(p)


def test_padded_1x1_takes_no_1x1_kernel(lib):
    """A 1x1 layer with an output row or column in the padding (out_h = in_h + 1) reads no input there:
    the 1x1 kernels, which read every output pixel's input words, are not offered; the k x k ones are,
    and give TFLM's bytes."""
    rng = rng_for("dsp-1x1-padded")
    p = kxk_params(rng, 16, 12, (25, 5), (1, 1), 1, (0, 0), 1, "sat")
    assert p["out_h"] == p["in_h"] + 1
    vs = arm_dsp.candidates(_step("conv2d_s8", p))
    assert vs and not any("1x1" in v.function for v in vs), [v.function for v in vs]
    for v in vs:
        if "reuse" not in v.key:  # those overwrite their input (check_input_dying)
            check_dsp(lib, "conv2d_s8", p, rand_i8(rng, 25 * 5 * 16), v)


def test_reuse_needs_room():
    """No reuse variant where the input's dead rows cannot hold the columns."""
    rng = rng_for("dsp-kxk-reuse-no")
    p = kxk_params(rng, 16, 4, (4, 4), (3, 3), 1, (1, 1), 1, "sat")
    assert "reuse" not in [v.key for v in arm_dsp.candidates(_step("conv2d_s8", p))]


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_reuse_on_cortex_m(target, tmp_path):
    conv_on_cortex_m(target, tmp_path, list(reuse_cases()) + list(reuse_cases("reusew")), misalign=False)


def kxk_tail_cases(key: str):
    """The k x k shapes of the pw4 and reuse tests, through the tail variant
    (key: tail, or tailw on the widened filter) wherever it is offered: a
    window of at most PATCH_MAX products (a first layer over 3 channels,
    dilation 2, padding on every side or none, a padded 1x1) and room for a
    block below the columns in the output's tail."""
    for shape in KXK_SHAPES + REUSE_SHAPES:
        for mode in ("sat", "sat_lo"):
            rng = rng_for("dsp-kxk-tail", *shape[:2], *shape[2], *shape[3], mode)
            p = kxk_params(rng, *shape, mode)
            vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == key]
            assert len(vs) == int(arm_dsp.kxk_tail_fits(p)), _short(p)
            if vs:
                assert vs[0].scratch == 0 and vs[0].wide == (key == "tailw") and "1x1" not in vs[0].function
                yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]), vs[0]


@pytest.mark.parametrize("key", ["tail", "tailw"])
def test_conv2d_kxk_tail_host(lib, key):
    """Bit-exact on guarded buffers, the input left as it is (a model input
    may be one), nothing outside the output written."""
    cases = list(kxk_tail_cases(key))
    assert len(cases) >= 16 and any(p["dilation_h"] == 2 for p, _, _ in cases)
    assert any(p["in_c"] == 3 and p["stride_h"] == 2 for p, _, _ in cases)
    for p, x, v in cases:
        check_input_dying(lib, p, x, v, keeps_input=True)
    rng = rng_for("dsp-kxk-tail-no")
    for shape in [(16, 5, (6, 7), (3, 3), 1, (1, 1), 1), (3, 8, (4, 4), (3, 3), 1, (1, 1), 1)]:
        p = kxk_params(rng, *shape, "sat")  # K = 144 > PATCH_MAX; 16 outputs: no block below the columns
        assert not arm_dsp.kxk_tail_fits(p), shape


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_kxk_tail_on_cortex_m(target, tmp_path):
    conv_on_cortex_m(target, tmp_path, list(kxk_tail_cases("tail")) + list(kxk_tail_cases("tailw")))


# ------------------- the k x k convolution without im2col (a window of widened input rows per output row)

# in_c, out_c, (h, w), (k_h, k_w), stride, (pad_top, pad_left): every column stride of WIN_STRIDES but 768,
# padding on every side and none, rows of 4n + 0..3 output pixels, a 3x5 window
WIN_SHAPES = [
    (16, 16, (12, 12), (3, 3), 1, (1, 1)), (16, 32, (13, 11), (3, 3), 2, (1, 1)),
    (32, 8, (9, 10), (3, 3), 1, (1, 1)), (8, 6, (10, 9), (3, 3), 1, (0, 0)),
    (8, 4, (11, 9), (3, 5), 1, (1, 2)), (16, 12, (8, 16), (3, 3), 2, (0, 1)),
    (64, 4, (6, 6), (3, 3), 1, (1, 1)),
]


# larger layers, whose window fits the output's last bytes, then the dead input (winreusew)
WIN_REUSE_SHAPES = [
    (16, 16, (32, 32), (3, 3), 1, (1, 1)), (16, 32, (32, 24), (3, 3), 2, (1, 1)),
    (32, 32, (20, 18), (3, 3), 1, (1, 1)), (64, 64, (16, 16), (3, 3), 1, (1, 1)),
]


def win_cases(shapes=WIN_SHAPES):
    for shape in shapes:
        for mode in ("sat", "sat_lo"):  # the modes with records
            rng = rng_for("dsp-kxk-win", *shape[:2], *shape[2], *shape[3], mode)
            p = kxk_params(rng, *shape, 1, mode)
            vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "winw"]
            assert len(vs) == 1 and vs[0].wide and vs[0].scratch == arm_dsp.win_scratch(p), _short(p)
            yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"]), vs[0]


def win_reuse_cases():
    """The window cases whose window fits the output's last bytes, then the dead input (winreusew)."""
    for p, x, _ in win_cases(WIN_REUSE_SHAPES):
        vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "winreusew"]
        assert arm_dsp.win_split(p) is not None and len(vs) == 1 and vs[0].scratch == 0 and vs[0].wide, _short(p)
        yield p, x, vs[0]


def test_conv2d_window_host(lib):
    for p, x, v in win_reuse_cases():
        check_input_dying(lib, p, x, v)
    cases = list(win_cases())
    assert all(arm_dsp.win_split(p) is None for p, _, _ in cases)  # small layers: no room in their outputs
    assert {2 * p["k_h"] * p["in_c"] * p["stride_w"] for p, _, _ in cases} == set(arm_dsp.WIN_STRIDES) - {768}
    assert {p["out_w"] % 4 for p, _, _ in cases} == {0, 1, 2, 3}
    for p, x, v in cases:
        check_dsp(lib, "conv2d_s8", p, x, v)
    rng = rng_for("dsp-kxk-win-no")
    for shape in [(12, 8, (9, 9), (3, 3), 1, (1, 1), 1), (16, 8, (9, 9), (3, 3), 1, (1, 1), 2),
                  (16, 7, (9, 9), (3, 3), 1, (1, 1), 1)]:  # no instance for S = 72; dilation 2; odd out_c
        p = kxk_params(rng, *shape, "sat")
        assert "winw" not in [v.key for v in arm_dsp.candidates(_step("conv2d_s8", p))], shape


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_window_on_cortex_m(target, tmp_path):
    """The window variant's pw4w instances (one per column stride) on the real DSP instructions; and with its
    window in the output's tail and the dead input."""
    conv_on_cortex_m(target, tmp_path, list(win_cases()))
    (tmp_path / "reuse").mkdir()
    conv_on_cortex_m(target, tmp_path / "reuse", list(win_reuse_cases()), misalign=False)


# ------------------- the k x k convolution in the 2 x 4 blocks



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
    conv_on_cortex_m(target, tmp_path, cases)


# ------------------- the 2 x 4 blocks on the filter widened to int16 offline (pw4w)

def wide_cases():
    """Every 1x1 shape and mode of the rows tests and every k x k shape of the
    pw4 tests, with the pw4w variant wherever the generator offers it: 4
    output pixels or more and the requantization records (the pw4 blocks'
    condition); the pixels after the blocks as one last block of 1-3."""
    for p, x in rows_cases():
        pr = arm_dsp.prepared_params("conv2d_s8", p).get("pw_requant")
        vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "pw4w"]
        assert len(vs) == int(pr is not None and p["out_h"] * p["out_w"] >= 4), _short(p)
        if vs:
            yield p, x, vs[0]
    for p, x, _ in kxk_pw4_cases():
        vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "pw4w"]
        assert len(vs) == 1 and vs[0].wide, _short(p)
        yield p, x, vs[0]
    for p, x in tail_cases():  # tailw: the tail's blocks on the wide layout, its last pixels read in place
        pr = arm_dsp.prepared_params("conv2d_s8", p).get("pw_requant")
        vs = [v for v in arm_dsp.candidates(_step("conv2d_s8", p)) if v.key == "tailw"]
        assert len(vs) == int(pr is not None) and all(v.scratch == 0 for v in vs), _short(p)
        if vs:
            yield p, x, vs[0]


def test_pack_wide_layout():
    """The wide words hold each group's (w0, w2), (w1, w3) int16 pairs: pairs
    interleaved a, b, a, b; a last odd channel on its own; K padded with 0."""
    w = np.arange(-30, 30, dtype=np.int8).reshape(3, 20)[:, :18]  # 3 channels, K = 18 (5 groups)
    words = arm_dsp.pack_wide(w).astype("<i4").view("<i2").reshape(-1, 2)
    assert words.shape == (2 * 5 * 2 + 5 * 2, 2)
    pad = np.zeros((3, 20), dtype=np.int16)
    pad[:, :18] = w
    for g in range(5):
        a, b = pad[0, 4 * g:4 * g + 4], pad[1, 4 * g:4 * g + 4]
        assert words[4 * g].tolist() == [a[0], a[2]] and words[4 * g + 1].tolist() == [b[0], b[2]]
        assert words[4 * g + 2].tolist() == [a[1], a[3]] and words[4 * g + 3].tolist() == [b[1], b[3]]
        c = pad[2, 4 * g:4 * g + 4]
        assert words[20 + 2 * g].tolist() == [c[0], c[2]] and words[20 + 2 * g + 1].tolist() == [c[1], c[3]]


def test_conv2d_wide_host(lib):
    cases = list(wide_cases())
    assert len(cases) >= 60 and any(p["k_h"] > 1 for p, _, _ in cases)
    assert {v.key for _, _, v in cases} == {"pw4w", "tailw"}
    for p, x, v in cases:
        check_dsp(lib, "conv2d_s8", p, x, v)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_conv2d_wide_on_cortex_m(target, tmp_path):
    """pw4w's assembly (mcf_dsp_pw4x2w) on the real DSP instructions, every shape and mode above."""
    cases = list(wide_cases())
    conv_on_cortex_m(target, tmp_path, cases)


def test_wide_filters_within_flash_budget(tmp_path):
    """A filter widened to int16 costs its int8 size once more in flash: no
    budget takes it where it is fastest; a --flash-budget of the weights and
    the code reserve alone leaves every layer on an int8 layout, saying why."""
    model = _model("kws_ref_model.tflite")
    free = _plan(model, tmp_path, "free", kernels="arm-dsp")
    wide = [s for s in free.steps if getattr(arm_dsp.chosen(free.extra["variants"], s), "wide", False)]
    assert wide, "KWS's convolutions take the widened filters without a flash budget"
    tight = _plan(model, tmp_path, "tight", kernels="arm-dsp",
                  flash_budget=free.weight_bytes + variant_choice.CODE_RESERVE)
    assert not any(getattr(arm_dsp.chosen(tight.extra["variants"], s), "wide", False) for s in tight.steps)
    for s in wide:
        assert "--flash-budget" in tight.extra["variant_reasons"][s.name], tight.extra["variant_reasons"][s.name]


# ------------------- fully connected, one input row, on the filter widened to int16 offline (w6)

from test_arm_dsp_kernels import _c_array, _program  # noqa: E402
from test_kernels import fc_params, rand_requant  # noqa: E402


def w6_cases():
    """Random layers (K 1-299: every K % 4, no whole group at all; N 1-39:
    every N % 6), each requantization, two MLPerf-AD-sized ones, and layers
    with requantization records (the full clamp range: one assembly call
    per layer for K % 4 = 0 and N >= 6, a last block of 0-5 rows)."""
    layers = []
    for seed in range(36):
        rng = rng_for("dsp-fc-w6", seed)
        p = dict(fc_params(rng, seed), rows=1)
        layers.append((p, rand_i8(rng, p["in_features"])))
    for k, n, full_range in ((640, 13, False), (37, 128, False), (640, 128, True), (8, 6, True), (4, 7, True),
                             (44, 35, True), (128, 8, True), (36, 5, True), (30, 12, True), (64, 9, True),
                             (20, 10, True)):
        rng = rng_for("dsp-fc-w6-big", k, n)
        p = dict(fc_params(rng, 1), rows=1, in_features=k, out_features=n, filter=rand_i8(rng, n * k),
                 bias=rng.integers(-(1 << 20), 1 << 20, n).astype(np.int32))
        p["multiplier"], p["shift"] = rand_requant(rng, n, bool(p["per_channel"]))
        if full_range:
            p["act_min"], p["act_max"] = -128, 127
        layers.append((p, rand_i8(rng, k)))
    for p, x in layers:
        vs = [v for v in arm_dsp.candidates(_step("fully_connected_s8", p)) if v.key == "w6"]
        assert len(vs) == 1 and vs[0].wide and vs[0].scratch == 0, _short(p)
        yield p, x, vs[0]


def test_fully_connected_w6_host(lib):
    cases = list(w6_cases())
    assert {p["out_features"] % 6 for p, _, _ in cases} == set(range(6))
    assert {p["in_features"] % 4 for p, _, _ in cases} == set(range(4))
    records = [(p["in_features"] % 4, p["out_features"]) for p, _, v in cases
               if arm_dsp.prepared_params("fully_connected_s8", p, v).get("pw_requant") is not None]
    assert {n % 6 for k, n in records if k == 0 and n >= 6} == set(range(6)) and any(k for k, _ in records)
    for p, x, v in cases:
        check_dsp(lib, "fully_connected_s8", p, x, v)
    assert "w6" not in [v.key for v in arm_dsp.candidates(_step("fully_connected_s8", dict(p, rows=2)))]


def fc_harness(cases) -> str:
    ints = "rows in_features out_features input_offset output_offset act_min act_max per_channel".split()
    decls, calls = [], []
    for i, (p, x, v) in enumerate(cases):
        q = arm_dsp.prepared_params("fully_connected_s8", p, v)
        decls.append(_c_array(f"filter{i}", "int32_t", q["filter"]) + _c_array(f"bias{i}", "int32_t", q["bias"])
                     + _c_array(f"mult{i}", "int32_t", q["multiplier"]) + _c_array(f"shift{i}", "int32_t", q["shift"]))
        records = "NULL"
        if q.get("pw_requant") is not None:
            decls.append(_c_array(f"rec{i}", "int32_t", q["pw_requant"]))
            records = f"rec{i}"
        fields = ", ".join(f".{f} = {int(q[f])}" for f in ints)
        decls.append(f"static const mcf_fully_connected_params p{i} = {{{fields}, .filter = (const int8_t *)"
                     f"(const void *)filter{i}, .bias = bias{i}, .multiplier = mult{i}, .shift = shift{i}, "
                     f".pw_requant = {records}}};\n")
        at = 1 if i % 3 == 2 else 0  # the input row at any alignment
        calls.append(harness_call(f"{v.function}(&p{i}, in_buf.b + {at}, output, scratch.b)", at, x.size,
                                  p["out_features"]))
    return _program(decls, calls, max(x.size for _, x, _ in cases), max(p["out_features"] for p, _, _ in cases), 4)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_fully_connected_w6_on_cortex_m(target, tmp_path):
    """w6's assembly (mcf_dsp_fc6w) on the real DSP instructions, every layer above."""
    cases = list(w6_cases())
    _run_on_cortex_m(target, tmp_path, fc_harness(cases), "mcf_dsp_matmul.c", [_short(p) for p, *_ in cases],
                     [x for _, x, _ in cases],
                     [np.append(KERNELS["fully_connected_s8"](p, x).reshape(-1), np.int8(0)) for p, x, _ in cases])


# ------------------- average pooling, 4 channels per SIMD step

from test_kernels import pool_params  # noqa: E402


def pool_cases():
    """Random pools (windows clipped by the padding, strides, requantize or
    not) with 4-12 channels, global pools up to the 255-tap limit, and the
    extreme inputs that fill the int16 sums."""
    for seed in range(40):
        rng = rng_for("dsp-pool", seed)
        p = dict(pool_params(rng, requantize=seed % 2 == 1))
        p["channels"] = 4 * int(rng.integers(1, 4))
        yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["channels"])
    for (h, w), fill in (((25, 5), -128), ((15, 17), 127), ((15, 17), -128), ((8, 8), None)):
        rng = rng_for("dsp-pool-global", h, w)
        p = dict(pool_params(rng), in_h=h, in_w=w, channels=8, out_h=1, out_w=1, k_h=h, k_w=w, stride_h=h,
                 stride_w=w, pad_top=0, pad_left=0, act_min=-128, act_max=127)
        n = h * w * 8
        yield p, (np.full(n, fill, np.int8) if fill is not None else rand_i8(rng, n))


def pool_variant(p):
    return arm_dsp.select(_step("avg_pool_s8", p))


def test_avg_pool_host(lib):
    cases = list(pool_cases())
    assert any(p["requantize"] for p, _ in cases) and any(p["k_h"] * p["k_w"] == 255 for p, _ in cases)
    for p, x in cases:
        check_dsp(lib, "avg_pool_s8", p, x, pool_variant(p))
    p = cases[-1][0]
    assert pool_variant(dict(p, channels=6)) is None  # not a multiple of 4
    assert pool_variant(dict(p, k_h=16, k_w=16)) is None  # 256 taps: beyond the int16 sums


def pool_decl(i: int, p: dict) -> str:
    ints = ("in_h in_w channels out_h out_w k_h k_w stride_h stride_w pad_top pad_left act_min act_max requantize "
            "input_offset output_offset multiplier shift").split()
    fields = ", ".join(f".{f} = {int(p.get(f, 0))}" for f in ints)
    return f"static const mcf_pool_params s{i} = {{{fields}}};\n"


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_avg_pool_on_cortex_m(target, tmp_path):
    kernel_on_cortex_m(target, tmp_path, "avg_pool_s8", "mcf_dsp_avg_pool_s8", "mcf_dsp_pool.c", list(pool_cases()),
                       pool_decl)


def test_small_flash_budget_keeps_the_variants_without_flash(tmp_path):
    """A --flash-budget below the weights plus the code reserve rules out only
    the variants that cost flash (tables, widened filters), not the others:
    a layer goes back to its portable kernel only when its every arm-dsp
    variant costs flash (KWS's softmax: its table), and says why."""
    model = _model("kws_ref_model.tflite")
    free = _plan(model, tmp_path, "free", kernels="arm-dsp")
    small = _plan(model, tmp_path, "small", kernels="arm-dsp", flash_budget=free.weight_bytes + 1024)
    assert not any(getattr(arm_dsp.chosen(small.extra["variants"], s), "wide", False) for s in small.steps)
    assert not any(s.kernel in arm_dsp.TABLES for s in small.steps if arm_dsp.variant(small, s) is not None)
    newly = [s for s in small.steps if small.extra["variants"][s.name] == "portable" != free.extra["variants"][s.name]]
    assert [s.kernel for s in newly] == ["softmax_s8"]
    for s in newly:
        opts = variant_choice.options(s, small.graph.tensors[s.outputs[0]].size)
        assert all(o.flash > 0 for o in opts if o.key != "portable")
        assert "--flash-budget" in small.extra["variant_reasons"][s.name]
    assert set(arm_dsp.fallback_layers(small)) == set(arm_dsp.fallback_layers(free)) | {s.name for s in newly}


# ------------------- table lookup and the binary ops with broadcasting (mcf_dsp_elementwise.c)

from test_kernels import binary_quant, binary_shapes  # noqa: E402

BINARY_KERNELS = ("mul_s8", "sub_s8", "maximum_s8", "minimum_s8")


def lut_cases():
    """Sizes around the 4-value words (0-3 left over), MobileNetV3's, one value."""
    for i, size in enumerate((1, 3, 4, 5, 7, 8, 63, 701, 4608)):
        rng = rng_for("dsp-lut", i)
        yield dict(size=size, table=rand_i8(rng, 256)), rand_i8(rng, size)
    rng = rng_for("dsp-lut-all")
    yield dict(size=256, table=rand_i8(rng, 256)), np.arange(-128, 128, dtype=np.int8)  # every index


def binary_cases(kernel: str):
    """Random broadcasts, squeeze-and-excitation's (1, H, W, C) x (1, 1, 1, C)
    either way round, no broadcast; the quantizations of the portable tests
    (MAXIMUM / MINIMUM on raw values or requantized); MUL with shifts below 0
    (the fast forms, full clamp range or not) and above (the general form);
    the full clamp range; extreme operands."""
    from mcuforge import fixedpoint as fp
    from mcuforge.ir import Node
    from mcuforge.ops import broadcast_params

    for seed in range(16):
        rng = rng_for("dsp-binary", kernel, seed)
        if seed % 4 == 0:
            a_shape = b_shape = tuple(int(v) for v in rng.integers(1, 6, 4))
            shape = broadcast_params(Node("n", "mul", [], []), a_shape, a_shape, a_shape)
        elif seed % 4 == 1:
            hwc = tuple(int(v) for v in rng.integers(1, 9, 3))
            a_shape, b_shape = (1, *hwc), (1, 1, 1, hwc[2])
            if seed % 8 == 5:
                a_shape, b_shape = b_shape, a_shape
            shape = broadcast_params(Node("n", "mul", [], []), a_shape, b_shape, (1, *hwc))
        else:
            a_shape, b_shape, shape = binary_shapes(rng)
        q = binary_quant(rng, kernel)
        if kernel == "mul_s8" and seed % 3 == 2:  # a real scale ratio above 1: shift >= 0, the general form
            q["multiplier"], q["shift"] = fp.quantize_multiplier(float(np.exp2(rng.uniform(0.1, 3))))
        if kernel == "sub_s8" and seed % 3 == 2:  # an output shift of 0: the general requantization
            q["output_shift"] = 0
        if kernel in ("maximum_s8", "minimum_s8") and seed % 4 == 2:  # both inputs in the output's quantization
            for k in (1, 2):
                q.update({f"input{k}_offset": -q["output_offset"], f"input{k}_multiplier": 1 << 30,
                          f"input{k}_shift": 1})
        if seed % 5 == 3 and "act_min" in q:
            q["act_min"], q["act_max"] = -128, 127
        a, b = rand_i8(rng, int(np.prod(a_shape))), rand_i8(rng, int(np.prod(b_shape)))
        if seed % 7 == 6:
            a, b = np.full_like(a, -128), np.full_like(b, 127 if seed % 2 else -128)
        yield {**shape, **q}, a, b


def tables_of(kernel: str, p: dict) -> np.ndarray | None:
    """A binary kernel's generator-made tables (arm_dsp.TABLES), or None (MUL has none)."""
    if kernel not in arm_dsp.TABLES:
        return None
    ctype, make = arm_dsp.TABLES[kernel]
    return np.ascontiguousarray(make(p), dtype=np.int32 if ctype == "int32_t" else np.int8)


def test_lut_and_binary_host(lib):
    """Bit-exact with the portable kernels (the NumPy twins), on guarded
    buffers; in place where the portable ones may be."""
    for p, x in lut_cases():
        v = arm_dsp.select(_step("lut_s8", p))
        check_dsp(lib, "lut_s8", p, x, v)
        buf = x.copy()
        keep: list = []
        assert lib.mcf_dsp_lut_s8(ct.byref(_fill(STRUCTS["lut_s8"], p, keep)), buf.ctypes.data_as(P8),
                                  buf.ctypes.data_as(P8), None) == 0
        assert np.array_equal(buf, p["table"][x.astype(np.int64) + 128])
    for kernel in BINARY_KERNELS:
        cases = list(binary_cases(kernel))
        assert {p["broadcast"] for p, _, _ in cases} == {0, 1}
        if kernel == "mul_s8":
            assert {p["shift"] >= 0 for p, _, _ in cases} == {True, False}
        if kernel == "sub_s8":  # every requantization mode of the tables
            assert {int(tables_of(kernel, p)[512]) for p, _, _ in cases} == {0, 1, 2}
        for p, a, b in cases:
            v = arm_dsp.select(_step(kernel, p))
            assert v is not None and v.function == f"mcf_dsp_{kernel}" and v.scratch == 0, kernel
            keep = []
            s = _fill(STRUCTS[kernel], p, keep)
            t = tables_of(kernel, p)
            extra = t.ctypes.data_as(ct.c_void_p) if t is not None else None
            expected = KERNELS[kernel](p, a, b).reshape(-1)
            out = np.full(expected.size + 64, 0x55, dtype=np.int8)
            fn = getattr(lib, v.function)
            assert fn(ct.byref(s), a.ctypes.data_as(P8), b.ctypes.data_as(P8), out.ctypes.data_as(P8), extra) == 0
            assert np.all(out[expected.size:] == 0x55) and np.array_equal(out[:expected.size], expected), \
                (kernel, _short(p))
            if not p["broadcast"]:
                buf = a.copy()
                assert fn(ct.byref(s), buf.ctypes.data_as(P8), b.ctypes.data_as(P8), buf.ctypes.data_as(P8),
                          extra) == 0
                assert np.array_equal(buf, expected), (kernel, _short(p))


def test_sub_tables_are_add_tables_negated():
    """SUB's tables: ADD's terms for the same parameters with input2's negated; MAXIMUM's: each input's
    values in the output's quantization (identity: the values themselves)."""
    for p, _, _ in binary_cases("sub_s8"):
        add, sub = arm_dsp.add_tables(p), arm_dsp.TABLES["sub_s8"][1](p)
        assert np.array_equal(sub[:256], add[:256]) and np.array_equal(sub[256:512], -add[256:512])
    raw = [p for p, _, _ in binary_cases("maximum_s8") if p["input1_multiplier"] == p["input2_multiplier"]
           == 1 << 30 and p["input1_shift"] == p["input2_shift"] == 1 and p["input1_offset"]
           == p["input2_offset"] == -p["output_offset"]]
    assert raw
    for p in raw:
        x = np.arange(-128, 128)
        assert np.array_equal(arm_dsp.max_min_tables(p), np.concatenate([x, x]).astype(np.int8))


def _c_ints(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


BINARY_STRUCT = {"mul_s8": "mcf_mul_params", "sub_s8": "mcf_sub_params", "maximum_s8": "mcf_maximum_minimum_params",
                 "minimum_s8": "mcf_maximum_minimum_params"}


def elementwise_harness(luts, binaries) -> str:
    """A Cortex-M program running mcf_dsp_lut_s8 and the binary kernels on
    each case: inputs from the semihosting file (a binary op's two operands
    one after the other; every other case's past a word boundary)."""
    decls, calls = [], []
    for i, (p, x) in enumerate(luts):
        decls.append(f"static const int8_t t{i}[256] = {_c_ints(p['table'])};\n"
                     f"static const mcf_lut_params l{i} = {{.size = {p['size']}, .table = t{i}}};\n")
        at = i % 2
        calls.append(harness_call(f"mcf_dsp_lut_s8(&l{i}, in_buf.b + {at}, output, scratch.b)", at, x.size, x.size))
    arrays = ("out_shape", "input1_stride", "input2_stride")
    for i, (kernel, p, a, b) in enumerate(binaries):
        fields = ", ".join(f".{f} = {int(v)}" for f, v in p.items() if f not in arrays)
        fields += ", " + ", ".join(f".{f} = {_c_ints(p[f])}" for f in arrays)
        decls.append(f"static const {BINARY_STRUCT[kernel]} m{i} = {{{fields}}};\n")
        t = tables_of(kernel, p)
        if t is not None:
            ctype = arm_dsp.TABLES[kernel][0]
            decls.append(f"static const {ctype} mt{i}[{t.size}] = {_c_ints(t)};\n")
            last = f"mt{i}"
        else:
            last = "scratch.b"
        at = i % 2
        n_out = int(np.prod(p["out_shape"])) if p["broadcast"] else p["size"]
        call = f"mcf_dsp_{kernel}(&m{i}, in_buf.b + {at}, in_buf.b + {at + a.size}, output, {last})"
        calls.append(harness_call(call, at, a.size + b.size, n_out))
    return _program(decls, calls, max([x.size for _, x in luts] + [a.size + b.size for _, _, a, b in binaries]),
                    max([x.size for _, x in luts] + [int(np.prod(p["out_shape"])) for _, p, _, _ in binaries]), 4)


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_lut_and_binary_on_cortex_m(target, tmp_path):
    luts = list(lut_cases())
    binaries = [(k, p, a, b) for k in BINARY_KERNELS for p, a, b in binary_cases(k)]
    _run_on_cortex_m(target, tmp_path, elementwise_harness(luts, binaries), "mcf_dsp_elementwise.c",
                     [f"lut {p['size']}" for p, _ in luts] + [f"{k} {_short(p)}" for k, p, _, _ in binaries],
                     [x for _, x in luts] + [np.concatenate([a, b]) for _, _, a, b in binaries],
                     [np.append(KERNELS["lut_s8"](p, x).reshape(-1), np.int8(0)) for p, x in luts]
                     + [np.append(KERNELS[k](p, a, b).reshape(-1), np.int8(0)) for k, p, a, b in binaries])


# ------------------- transposed convolution (mcf_dsp_transpose_conv.c)

from test_kernels import tconv_params  # noqa: E402


def tconv_cases():
    """The portable tests' random layers (1-5 channels, kernels 1-4, strides
    1-4, padding, per channel or not, with and without bias), the same with
    4-16 input channels (the SIMD steps and their remainders) and the full
    clamp range, and a U-Net's 2x upsampling (3x3, stride 2, 16 -> 8
    channels); every requantization mode."""
    for seed in range(24):
        rng = rng_for("dsp-tconv", seed)
        p = tconv_params(rng, seed)
        if seed % 2:
            c = int(rng.choice([4, 7, 8, 13, 16]))
            p = dict(p, in_c=c, filter=rand_i8(rng, p["out_c"] * p["k_h"] * p["k_w"] * c))
        if seed % 3 == 1:
            p = dict(p, act_min=-128, act_max=127)
        if seed % 4 == 3:  # a shift of 0 (a scale ratio in [0.5, 1)): the general requantization
            p = dict(p, shift=np.zeros_like(np.asarray(p["shift"])))
        if seed % 5 == 2:  # right shifts only and a small filter: the fast requantization
            p = dict(p, shift=np.minimum(np.asarray(p["shift"]), -2), filter=np.asarray(p["filter"]) // 16)
        yield p, rand_i8(rng, p["in_h"] * p["in_w"] * p["in_c"])
    rng = rng_for("dsp-tconv-unet")
    m, s = quantize_per_channel(rng, 8)
    p = dict(in_h=10, in_w=10, in_c=16, out_h=20, out_w=20, out_c=8, k_h=3, k_w=3, stride_h=2, stride_w=2,
             pad_top=1, pad_left=1, input_offset=5, output_offset=-3, act_min=-128, act_max=127, per_channel=1,
             filter=rand_i8(rng, 8 * 9 * 16) // 4, bias=rng.integers(-3000, 3000, 8), multiplier=m, shift=s)
    yield p, rand_i8(rng, 10 * 10 * 16)


def quantize_per_channel(rng, n: int):
    from mcuforge import fixedpoint as fp
    pairs = [fp.quantize_multiplier(float(np.exp2(rng.uniform(-12, -7)))) for _ in range(n)]
    return np.array([a for a, _ in pairs], np.int32), np.array([b for _, b in pairs], np.int32)


def tconv_mode(p) -> str:
    """The requantization copy mcf_dsp_transpose_conv_s8 runs: the mode the generator proves (per_channel of its
    prepared struct), with the clamp range."""
    if arm_dsp.prepared_params("transpose_conv_s8", p)["per_channel"] != arm_dsp.FAST_REQUANT:
        return "general"
    return "sat" if (p["act_min"], p["act_max"]) == (-128, 127) else "fast"


def test_transpose_conv_host(lib):
    cases = list(tconv_cases())
    assert {tconv_mode(p) for p, _ in cases} == {"general", "fast", "sat"}
    assert any(p["in_c"] % 4 == 0 for p, _ in cases) and any(p["in_c"] % 4 for p, _ in cases)
    for p, x in cases:
        v = arm_dsp.select(_step("transpose_conv_s8", p))
        assert v is not None and v.function == "mcf_dsp_transpose_conv_s8" and v.scratch == 0
        check_dsp(lib, "transpose_conv_s8", p, x, v)
    many = dict(cases[0][0], k_h=12, k_w=12, stride_h=1, stride_w=2)  # 72 taps reach a pixel: beyond the kernel
    assert not arm_dsp.tconv_fits(many) and arm_dsp.select(_step("transpose_conv_s8", many)) is None


def tconv_decl(i: int, p: dict) -> str:
    """Case i's struct as the generator prepares it (multipliers per channel, the mode in per_channel)."""
    q = arm_dsp.prepared_params("transpose_conv_s8", p)
    ints = ("in_h in_w in_c out_h out_w out_c k_h k_w stride_h stride_w pad_top pad_left input_offset "
            "output_offset act_min act_max per_channel").split()
    out = (f"static const int8_t f{i}[] = {_c_ints(np.asarray(q['filter']).reshape(-1))};\n"
           f"static const int32_t m{i}[] = {_c_ints(q['multiplier'])};\nstatic const int32_t q{i}[] = "
           f"{_c_ints(q['shift'])};\n")
    bias = "NULL"
    if q["bias"] is not None:
        out += f"static const int32_t b{i}[] = {_c_ints(q['bias'])};\n"
        bias = f"b{i}"
    fields = ", ".join(f".{f} = {int(q[f])}" for f in ints)
    return out + (f"static const mcf_transpose_conv_params s{i} = {{{fields}, .filter = f{i}, .bias = {bias}, "
                  f".multiplier = m{i}, .shift = q{i}}};\n")


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_transpose_conv_on_cortex_m(target, tmp_path):
    kernel_on_cortex_m(target, tmp_path, "transpose_conv_s8", "mcf_dsp_transpose_conv_s8",
                       "mcf_dsp_transpose_conv.c", list(tconv_cases()), tconv_decl)


# ------------------- softmax from a table of exps (mcf_dsp_softmax.c)

def softmax_cases():
    """The portable tests' scales, betas and row shapes (one column, 1001 columns, flat rows of 600 whose
    exponent passes 31), peaked and random rows, and scales whose diff_min cuts the table."""
    from mcuforge import fixedpoint as fp

    for i, (beta, scale) in enumerate(((1.0, 1 / 256), (1.0, 0.1), (1.0, 0.5), (0.5, 0.1), (2.0, 0.02),
                                       (1e-3, 0.1))):
        mult, left_shift = fp.preprocess_softmax_scaling(beta, scale, 5)
        diff_min = -fp.calculate_input_radius(5, left_shift, 31)
        rng = rng_for("dsp-softmax", i)
        for rows, cols in ((1, 1), (3, 7), (2, 100), (1, 1001)):
            p = dict(rows=rows, cols=cols, input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)
            x = rand_i8(rng, rows * cols)
            if cols > 4:
                x[:cols] = np.clip(rng.normal(0, 5, cols), -128, 127).astype(np.int8)
            yield p, x
        p = dict(rows=1, cols=600, input_multiplier=mult, input_left_shift=left_shift, diff_min=diff_min)
        yield p, np.zeros(600, np.int8)


def test_softmax_table_host(lib):
    """Bit-exact with the portable kernel, in place too; the table is the portable kernel's exps."""
    cases = list(softmax_cases())
    assert any(np.any(arm_dsp.softmax_table(p) == 0) for p, _ in cases)  # diff_min inside the 256 differences
    for p, x in cases:
        v = arm_dsp.select(_step("softmax_s8", p))
        assert v is not None and v.function == "mcf_dsp_softmax_s8" and v.scratch == 0
        t = arm_dsp.softmax_table(p)
        keep: list = []
        s = _fill(STRUCTS["softmax_s8"], p, keep)
        expected = KERNELS["softmax_s8"](p, x)
        for in_place in (False, True):
            buf = x.copy()
            out = buf if in_place else np.full(x.size + 64, 0x55, dtype=np.int8)
            assert lib.mcf_dsp_softmax_s8(ct.byref(s), buf.ctypes.data_as(P8), out.ctypes.data_as(P8),
                                          t.ctypes.data_as(ct.c_void_p)) == 0
            assert np.array_equal(out[:x.size], expected), _short(p)
            assert in_place or np.all(out[x.size:] == 0x55)


def softmax_decl(i: int, p: dict) -> str:
    fields = ", ".join(f".{f} = {int(p[f])}" for f in ("rows", "cols", "input_multiplier", "input_left_shift",
                                                       "diff_min"))
    return (f"static const int32_t t{i}[256] = {_c_ints(arm_dsp.softmax_table(p))};\n"
            f"static const mcf_softmax_params s{i} = {{{fields}}};\n")


@needs_qemu
@pytest.mark.parametrize("target", ["qemu-cortex-m4", "qemu-cortex-m7"])
def test_softmax_table_on_cortex_m(target, tmp_path):
    kernel_on_cortex_m(target, tmp_path, "softmax_s8", "mcf_dsp_softmax_s8", "mcf_dsp_softmax.c",
                       list(softmax_cases()), softmax_decl, last="t{i}", needs=("mcf_fixedpoint.c",))
