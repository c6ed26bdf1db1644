"""Patch-based inference: byte-identical to layer by layer, in the reference
and in the generated C, for several grids and split points; `auto` keeps
layer by layer under a generous budget, switches under a tight one, and
fails with exit 3 under an impossible one."""
from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.tools import hostrun
from mcuforge import reference  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import canonicalize, write_outputs  # noqa: E402
from mcuforge.plan import build_patch_plan, build_plan, lower  # noqa: E402
from mcuforge.quantize import quantize  # noqa: E402
from mcuforge.schedule.patch import patch_steps, valid_split  # noqa: E402
from mcuforge.zoo import ZOO, mobilenet_v2  # noqa: E402
from marks import needs_qemu  # noqa: E402

MODELS = {name: ZOO[name] for name in ("mbv2_blocks", "mbv1", "resnet8", "dscnn", "odd_shapes", "concat_net",
                                       "activation_zoo")}
MODELS["mobilenetv2_035_96"] = lambda: mobilenet_v2(width=0.35, resolution=96, num_classes=10)
MODELS["mobilenetv2_035_144"] = lambda: mobilenet_v2(width=0.35, resolution=144, num_classes=10)
GRIDS = (2, 3, 4)


@lru_cache(maxsize=None)
def quantized(name):
    module, example = MODELS[name]()
    g = canonicalize(from_torch(module, example, name=name))
    rng = np.random.default_rng(sum(map(ord, name)))
    shape = tuple(example.shape)
    calib = rng.standard_normal((4, shape[2], shape[3], shape[1])).astype(np.float32)
    return quantize(g, {g.inputs[0]: calib})


def splits_of(name, count=3):
    g = quantized(name)
    steps, _ = lower(g)
    ok = []
    for s in range(1, len(steps)):
        # every grid of GRIDS fits the tensor crossing the split
        if valid_split(g, steps, s) is None and patch_steps(g, steps, s, max(GRIDS)) is not None:
            ok.append(s)
    if len(ok) <= count:
        return ok
    picks = [ok[round(i * (len(ok) - 1) / (count - 1))] for i in range(count)]
    return sorted(set(picks))


CASES = [(name, split) for name in MODELS for split in splits_of(name)]


def test_every_model_has_three_splits():
    for name in MODELS:
        assert len(splits_of(name)) >= 3, name


@pytest.mark.parametrize("stream", [False, True], ids=["input-in-arena", "input-streamed"])
@pytest.mark.parametrize("name,split", CASES)
def test_patch_equals_layer_by_layer(name, split, stream, tmp_path):
    g = quantized(name)
    cfg = BuildConfig(name=f"{name}_s{split}", schedule="patch", input_stream=stream)
    layer = build_plan(g, cfg)
    rng = np.random.default_rng(split)
    shape = g.tensors[g.inputs[0]].shape
    xs = rng.integers(-128, 128, (2,) + shape[1:]).astype(np.int8)
    want = [reference.run(layer, x).outputs for x in xs]
    built = 0
    # every grid with the input in the arena; streamed, the first grid that fits in an order that turns with the
    # case, so that the streamed cases of a model still cover every grid
    turn = CASES.index((name, split)) % len(GRIDS)
    for grid in GRIDS if not stream else GRIDS[turn:] + GRIDS[:turn]:
        if stream and built:
            break
        plan = build_patch_plan(g, cfg, split, grid, layer)
        if plan is None:
            continue  # the stage output is smaller than the grid
        assert plan.schedule == "patch" and plan.patch.grid == grid and plan.patch.split == split
        assert plan.patch.input_stream == stream
        if stream:  # the whole input is nowhere in the arena
            assert plan.input not in plan.memory.tensor_offsets
        for i, x in enumerate(xs):
            got = reference.run(plan, x, poison=grid).outputs
            for o in plan.outputs:
                assert np.array_equal(got[o], want[i][o]), f"{name} split {split} grid {grid}: reference differs"
        out = tmp_path / f"g{grid}"
        write_outputs(plan, out)
        exe = hostrun.build(plan, out, tmp_path / f"b{grid}", opt="-O1")
        got_c = hostrun.run(plan, exe, xs)
        for i in range(len(xs)):
            for k, o in enumerate(plan.outputs):
                assert np.array_equal(got_c[k][i].reshape(-1), want[i][o].reshape(-1)), \
                    f"{name} split {split} grid {grid}: C differs from layer by layer"
        built += 1
    assert built >= 1


def test_odd_shapes_stage_has_odd_stride_and_large_depthwise():
    """The odd_shapes cases above really patch stride 2 on odd sizes and
    5x5/7x7 depthwise layers."""
    g = quantized("odd_shapes")
    steps, _ = lower(g)
    last = max(splits_of("odd_shapes"))
    stage = steps[:last]
    odd_stride = [s for s in stage if s.params.get("stride_h") == 2 and s.params.get("in_h", 0) % 2 == 1]
    big_dw = [s for s in stage if s.kernel.startswith("depthwise") and s.params["k_h"] in (5, 7)]
    assert odd_stride and big_dw


def test_mobilenet_v2_144_patch_reduction():
    g = quantized("mobilenetv2_035_144")
    from mcuforge.plan import best_patch_plan

    cfg = BuildConfig(name="mbv2", schedule="patch")
    layer = build_plan(g, cfg)
    plan = best_patch_plan(g, cfg, layer)
    assert plan.patch.mac_overhead <= 0.3
    assert plan.arena_size * 3 <= layer.arena_size  # measured reduction is in bench/patch.py


def _onnx_model(tmp_path):
    module, example = ZOO["mbv2_blocks"]()
    path = tmp_path / "mbv2_blocks.onnx"
    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17, input_names=["input"])
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((4,) + tuple(example.shape[1:])).astype(np.float32))
    return path, calib


def mcuforge(*args):
    return subprocess.run([sys.executable, "-m", "mcuforge", *map(str, args)], capture_output=True, text=True)


def test_auto_schedule_and_budgets(tmp_path):
    model, calib = _onnx_model(tmp_path)
    out = tmp_path / "layer"
    assert mcuforge("compile", model, "-o", out, "--calibration", calib, "-q").returncode == 0
    layer = json.loads((out / "report.json").read_text())
    assert layer["schedule"] == "layer"
    peak = layer["arena_bytes"]

    generous = tmp_path / "generous"
    r = mcuforge("compile", model, "-o", generous, "--calibration", calib, "--schedule", "auto",
                 "--sram-budget", str(peak))
    assert r.returncode == 0, r.stderr
    assert json.loads((generous / "report.json").read_text())["schedule"] == "layer"

    tight = tmp_path / "tight"
    r = mcuforge("compile", model, "-o", tight, "--calibration", calib, "--schedule", "auto",
                 "--sram-budget", str(peak - 1))
    assert r.returncode == 0, r.stderr
    rep = json.loads((tight / "report.json").read_text())
    assert rep["schedule"] == "patch" and rep["arena_bytes"] < peak
    assert rep["patch"]["layer_arena_bytes"] == peak and rep["patch"]["grid"] >= 2
    assert "patch-based" in r.stdout and "extra MACs" in r.stdout
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype(np.float32))
    r = mcuforge("run", tight, "--input", x, "--check")
    assert r.returncode == 0 and "check passed" in r.stdout, r.stderr
    png = tmp_path / "both.png"
    r = mcuforge("report", tight, "--plot", png)
    assert r.returncode == 0 and png.read_bytes()[:4] == b"\x89PNG"

    impossible = tmp_path / "impossible"
    r = mcuforge("compile", model, "-o", impossible, "--calibration", calib, "--schedule", "auto",
                 "--sram-budget", "1000")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and "best patch schedule" in r.stderr and "1000" in r.stderr
    assert not impossible.exists()


def test_forced_grid_and_overhead_bound(tmp_path):
    model, calib = _onnx_model(tmp_path)
    out = tmp_path / "g2"
    r = mcuforge("compile", model, "-o", out, "--calibration", calib, "--schedule", "patch", "--patch-grid", "2")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "report.json").read_text())["patch"]["grid"] == 2
    for bound in ("0", "0.1"):
        out = tmp_path / f"bound{bound}"
        r = mcuforge("compile", model, "-o", out, "--calibration", calib, "--schedule", "patch",
                     "--patch-max-overhead", bound)
        assert r.returncode == 0, r.stderr
        patch = json.loads((out / "report.json").read_text())["patch"]
        assert patch["mac_overhead"] <= float(bound)
    r = mcuforge("compile", model, "-o", tmp_path / "nope", "--calibration", calib, "--schedule", "patch",
                 "--patch-max-overhead", "-1")
    assert r.returncode == 2 and "--patch-max-overhead" in r.stderr
    assert not (tmp_path / "nope").exists()


SHARED_MODELS = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.mark.skipif(not (SHARED_MODELS / "vww_96_int8.tflite").is_file(),
                    reason="../shared/models/vww_96_int8.tflite is absent (MLPerf Tiny models not provided)")
def test_vww_streamed_patch_plan(tmp_path):
    """MLPerf Tiny VWW, input streamed: within the 24,530-byte target and
    byte-identical to layer by layer, in the reference and in C."""
    from mcuforge.pipeline import load_model
    from mcuforge.plan import best_patch_plan

    g = quantize(canonicalize(load_model(SHARED_MODELS / "vww_96_int8.tflite")))
    cfg = BuildConfig(name="vww", schedule="patch", input_stream=True)
    layer = build_plan(g, cfg)
    plan = best_patch_plan(g, cfg, layer)
    assert plan.arena_size <= 24530 and plan.patch.mac_overhead <= 0.3
    xs = np.random.default_rng(4).integers(-128, 128, (2, 96, 96, 3)).astype(np.int8)
    write_outputs(plan, tmp_path / "gen")
    got = hostrun.run(plan, hostrun.build(plan, tmp_path / "gen", tmp_path / "b"), xs)
    for i, x in enumerate(xs):
        want = reference.run(layer, x).outputs[plan.outputs[0]]
        assert np.array_equal(reference.run(plan, x, poison=1).outputs[plan.outputs[0]], want)
        assert np.array_equal(got[0][i].reshape(-1), want.reshape(-1))


@needs_qemu
@pytest.mark.parametrize("stream", [False, True], ids=["input-in-arena", "input-streamed"])
def test_patch_schedule_on_cortex_m_under_qemu(stream, tmp_path):
    """A patch-based model cross-compiled for Cortex-M4 and run under QEMU
    gives the host's bytes (which equal layer by layer)."""
    from mcuforge.tools import qemu
    from mcuforge.plan import best_patch_plan
    g = quantized("mbv2_blocks")
    cfg = BuildConfig(name="mbv2p", schedule="patch", input_stream=stream)
    layer = build_plan(g, cfg)
    plan = best_patch_plan(g, cfg, layer)
    out = tmp_path / "gen"
    write_outputs(plan, out)
    xs = np.random.default_rng(8).integers(-128, 128, (3, 32, 32, 3)).astype(np.int8)
    host = hostrun.run(plan, hostrun.build(plan, out, tmp_path / "host"), xs)
    got, _stats = qemu.build_and_run(plan, out, xs, "qemu-cortex-m4")
    for i, x in enumerate(xs):
        want = reference.run(layer, x).outputs[plan.outputs[0]].reshape(-1)
        assert np.array_equal(host[0][i].reshape(-1), want)
        assert np.array_equal(got[0][i].reshape(-1), want), "Cortex-M4 patch run differs from layer by layer"
