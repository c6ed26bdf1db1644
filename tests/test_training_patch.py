"""Training with the patch-based schedule for the frozen prefix: the layers
below the lowest one the backward pass reaches are pure inference and run
tile by tile. For sparse policies on MobileNetV2-0.35 at 96x96 and
mbv2_blocks and a bias policy on mbv1, 10 steps of the generated C (host; Cortex-M4 under
QEMU for the mbv2_blocks cases) leave exactly the NumPy reference's parameters and report
its losses; the reference itself equals the layer-by-layer plan's (the patch
stage changes memory, not numbers), also with the input streamed tile by
tile (<name>_train_step_stream) and with the arm-dsp kernel set; the plan's stage ends at or below the
lowest layer the backward pass reaches and is smaller than layer by layer;
full training with patches is refused (exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.codegen.portable import include_dirs  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.tools.elfcheck import model_breakdown, read_elf  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.ir import BudgetError, McuforgeError  # noqa: E402
from mcuforge.pipeline import canonicalize, compile_model, plan_model, quantize_graph  # noqa: E402
from mcuforge.tools import harness  # noqa: E402
from mcuforge.zoo import ZOO, mobilenet_v2  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from marks import needs_qemu  # noqa: E402
from test_cli import mcuforge, small_onnx  # noqa: E402
from test_training import check_run, reference_run, requests  # noqa: E402

FACTORIES = {**ZOO, "mobilenetv2_035_96": lambda: mobilenet_v2(width=0.35, resolution=96, num_classes=10)}
# (model, options): policies whose backward pass stops above the layers a patch stage pays off on
CASES = {
    "mobilenetv2_035_96-sparse": ("mobilenetv2_035_96", dict(training="sparse", train_bias_layers=4,
                                                              train_weight_layers=(-4,), train_weight_ratio=(0.5,))),
    "mbv2_blocks-sparse": ("mbv2_blocks", dict(training="sparse", train_bias_layers=2, train_weight_layers=(-1,))),
    "mbv1-bias": ("mbv1", dict(training="bias", train_bias_layers=2)),
    # the input read tile by tile through a callback: <name>_train_step_stream
    "mbv2_blocks-sparse-stream": ("mbv2_blocks", dict(training="sparse", train_bias_layers=2, train_weight_layers=(-1,),
                                                      input_stream=True)),
    # the arm-dsp kernel set: the patch stage and the frozen layers above it on arm-dsp kernels
    "mbv2_blocks-sparse-arm-dsp": ("mbv2_blocks", dict(training="sparse", train_bias_layers=2, train_weight_layers=(-1,),
                                                       kernels="arm-dsp")),
}
QEMU_CASES = ("mbv2_blocks-sparse", "mbv2_blocks-sparse-stream", "mbv2_blocks-sparse-arm-dsp")


def _graph_and_calibration(name: str, work: Path):
    module, example = FACTORIES[name]()
    rng = np.random.default_rng(sum(map(ord, name)))
    calib = work / f"{name}_calib.npy"
    work.mkdir(parents=True, exist_ok=True)
    np.save(calib, rng.standard_normal((16,) + tuple(example.shape[1:])).astype(np.float32))
    return from_torch(module, example, name=name.split("_")[0]), str(calib)


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request, tmp_path_factory):
    name, options = CASES[request.param]
    work = tmp_path_factory.mktemp(request.param)
    graph, calib = _graph_and_calibration(name, work)
    graph = quantize_graph(canonicalize(graph), calib)  # once: both plans below keep its scales
    cfg = BuildConfig(name="m", learning_rate=0.1, **options)
    plan = compile_model(graph, cfg.merged(schedule="patch"), work / "gen")
    layer = plan_model(graph, cfg.merged(schedule="layer", input_stream=False))
    xs, labels = requests(plan)
    want = reference_run(plan, xs, labels)
    return request.param, plan, layer, work / "gen", xs, labels, want


def test_reference_equals_layer_by_layer(case):
    """The patch stage computes the same bytes: the training step on the patch
    plan learns exactly what the layer-by-layer plan learns."""
    _, plan, layer, _, xs, labels, (losses, outputs, state) = case
    assert plan.training.state_layout == layer.training.state_layout
    l_losses, l_outputs, l_state = reference_run(layer, xs, labels)
    assert np.all(np.isfinite(losses)) and np.array_equal(losses, l_losses)
    assert state.to_bytes(plan) == l_state.to_bytes(layer) and np.array_equal(outputs, l_outputs)


def test_stage_ends_at_or_below_the_lowest_reached_layer(case):
    _, plan, layer, _, _, _, _ = case
    st, tp = plan.patch, plan.training
    assert plan.schedule == "patch" and st is not None and st.split >= 2
    # the plan's steps: the stage's layers 0..split-1, the tile copy at split, then the rest
    assert plan.steps[st.split].kernel == "copy_tile_s8"
    forward_names = {s.name: s.index for s in plan.steps[st.split + 1:]}
    reached = {forward_names[b.name.rsplit(":", 1)[0]] for b in tp.steps if b.name.rsplit(":", 1)[0] in forward_names}
    assert min(reached) == tp.lowest_reached > st.split
    assert plan.steps[tp.lowest_reached].name == layer.steps[layer.training.lowest_reached].name
    stage_tensors = {o for s in plan.steps[:st.split] for o in s.outputs} | {plan.input} | set(st.buffers.values())
    read = {t for b in tp.steps for t in b.inputs}
    assert not read & (stage_tensors - {st.tensor}), "the backward pass reads an activation of the patch stage"
    assert all(t.step > st.split and plan.steps[t.step].name == t.name for t in tp.layers)
    # a real saving, and the arena still covers the whole training step
    assert plan.arena_size < layer.arena_size
    n = len(plan.steps)
    assert plan.memory.arena_size == max(b.offset + b.size for b in plan.memory.buffers)
    assert max(plan.memory.live_bytes[n:]) > 0 and len(plan.memory.live_bytes) == n + len(tp.steps)
    assert plan.sram_bytes() == plan.arena_size + tp.state_bytes


def test_host_equals_reference(case, tmp_path):
    _, plan, _, out, xs, labels, want = case
    exe = harness.build_host(plan, out, tmp_path / "host")
    check_run(plan, harness.run_host(plan, exe, xs, labels), want, "host")
    header = (out / "m.h").read_text()
    assert f"#define M_ARENA_SIZE {plan.arena_size}\n" in header
    stream = plan.patch.input_stream
    assert ("int m_train_step_stream(m_read_fn read, void *context, int label, float *loss);" in header) == stream
    assert ("int m_train_step(int label, float *loss);" in header) != stream
    report = json.loads((out / "report.json").read_text())
    assert report["patch"]["split"] == plan.patch.split
    assert report["training"]["lowest_reached_layer"]["index"] == plan.training.lowest_reached
    if plan.config.kernels == "arm-dsp":  # the stage's layers run arm-dsp kernels, not the portable ones
        stage = {L["index"]: L for L in report["layers"] if L["index"] < plan.patch.split}
        assert stage and any(L["function"].startswith("mcf_dsp_") for L in stage.values()), stage
    obj = tmp_path / "model.o"
    subprocess.run(["gcc", "-std=c99", "-c", "-O2", *[f"-I{d}" for d in include_dirs(out)], str(out / "m.c"),
                    "-o", str(obj)], check=True)
    assert read_elf(obj).symbol("m_arena").size == plan.arena_size


@needs_qemu
@pytest.mark.parametrize("case", QEMU_CASES, indirect=True)  # mbv2_blocks under QEMU; the host runs every case
def test_cortex_m4_equals_reference(case, tmp_path):
    key, plan, _, out, xs, labels, want = case
    elf = harness.build_qemu(plan, out, tmp_path / "m4", "qemu-cortex-m4")
    check_run(plan, harness.run_qemu(plan, elf, xs, labels, "qemu-cortex-m4"), want, "Cortex-M4")
    mem = read_elf(elf)
    assert mem.symbol("m_arena").size == plan.arena_size
    m = model_breakdown(mem, "m")
    assert m["other_ram_bytes"] == plan.training.state_bytes and m["ram_bytes"] == plan.sram_bytes()


def test_auto_takes_patches_only_over_the_budget(tmp_path):
    graph, calib = _graph_and_calibration("mbv2_blocks", tmp_path)
    cfg = BuildConfig(name="m", calibration=calib, schedule="auto", **CASES["mbv2_blocks-sparse"][1])
    layer = plan_model(graph, cfg)
    assert layer.schedule == "layer" and layer.patch is None
    budget = layer.sram_bytes() - 1
    patch = plan_model(graph, cfg.merged(sram_budget=budget))
    assert patch.schedule == "patch" and patch.sram_bytes() <= budget and "patch" in patch.extra["auto"]
    with pytest.raises(BudgetError) as err:  # full training cannot use patches: both numbers, exit 3
        plan_model(graph, cfg.merged(training="full", sram_budget=1000))
    assert err.value.exit_code == 3 and "allows 1000" in str(err.value) and "full" in str(err.value)


def test_full_refused(tmp_path):
    graph, calib = _graph_and_calibration("mbv1", tmp_path)
    with pytest.raises(McuforgeError) as err:
        plan_model(graph, BuildConfig(name="m", calibration=calib, training="full", schedule="patch"))
    assert err.value.exit_code == 2 and "full" in str(err.value) and "every weight layer" in str(err.value)
    with pytest.raises(McuforgeError) as err:  # the backward pass reaches the first layer: nothing to patch
        plan_model(graph, BuildConfig(name="m", calibration=calib, training="sparse", schedule="patch",
                                      train_bias_layers=1, train_weight_layers=(0,)))
    assert err.value.exit_code == 2 and "reaches down to layer 0" in str(err.value)
    model = small_onnx(tmp_path / "small.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    out = tmp_path / "out"
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--schedule", "patch", "--training", "full")
    assert res.returncode == 2 and "Traceback" not in res.stderr and not out.exists(), res.stderr
    assert all(w in res.stderr for w in ("full", "every weight layer", "--schedule layer")), res.stderr
