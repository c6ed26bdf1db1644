"""On-device training end to end: for bias, sparse and full updates on three
zoo models (and sparse with SGD momentum on one), 10 training steps of the generated C (host, and Cortex-M4 under
QEMU) leave exactly the NumPy reference's parameters, bit for bit, and
report its losses; inference after training equals the reference's with the
trained state; the arena symbol equals <NAME>_ARENA_SIZE and the state
symbol <NAME>_TRAIN_STATE_SIZE. One compile and one build per case."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.codegen.portable import include_dirs  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.tools.elfcheck import model_breakdown, read_elf  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.tools import harness  # noqa: E402
from mcuforge.reference import training as tref  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

from marks import needs_qemu  # noqa: E402

MODELS = ("mbv1", "mbv2_blocks", "dscnn")
MODES = ("bias", "sparse", "full")
CASES = [(m, k, {}) for m in MODELS for k in MODES] + [("mbv2_blocks", "sparse", {"momentum": 0.9})]
STEPS = 10


def compile_training(name: str, outdir: Path, net=None, **options):
    """Compile zoo model `name` (or the builder `net`) with training options."""
    module, example = (net or ZOO[name])()
    rng = np.random.default_rng(sum(map(ord, name)))
    calib = outdir.parent / f"{name}_calib.npy"
    calib.parent.mkdir(parents=True, exist_ok=True)
    np.save(calib, rng.standard_normal((16,) + tuple(example.shape[1:])).astype(np.float32))
    cfg = BuildConfig(name=name, calibration=str(calib), **options)
    return compile_model(from_torch(module, example, name=name), cfg, outdir)


def requests(plan, seed: int = 3):
    """STEPS training requests, then two inference requests (label -1)."""
    rng = np.random.default_rng(seed)
    shape = plan.graph.tensors[plan.input].shape[1:]
    xs = rng.integers(-128, 128, (STEPS + 2,) + shape).astype(np.int8)
    labels = list(rng.integers(0, plan.training.classes, STEPS)) + [-1, -1]
    return xs, labels


def reference_run(plan, xs, labels):
    state = tref.TrainState.initial(plan)
    losses, outputs = [], []
    for x, label in zip(xs, labels):
        if label >= 0:
            losses.append(tref.train_step(plan, state, x, int(label)))
        else:
            outputs.append(tref.infer(plan, state, x))
    return np.array(losses, dtype=np.float32), np.array(outputs), state


@pytest.fixture(scope="module", params=CASES, ids=lambda p: f"{p[0]}-{p[1]}" + "".join(f"-{k}" for k in p[2]))
def case(request, tmp_path_factory):
    name, mode, extra = request.param
    out = tmp_path_factory.mktemp(f"{name}_{mode}") / "gen"
    plan = compile_training(name, out, training=mode, learning_rate=0.1, **extra)
    xs, labels = requests(plan)
    want = reference_run(plan, xs, labels)
    return plan, out, xs, labels, want


def check_run(plan, run, want, where: str) -> None:
    losses, outputs, state = want
    assert np.array_equal(run.losses, losses), f"{where}: losses {run.losses} != reference {losses}"
    assert run.state == state.to_bytes(plan), f"{where}: trained parameters differ from the reference"
    assert np.array_equal(run.outputs, outputs), f"{where}: inference after training differs"


def test_training_changes_parameters(case):
    plan, _, _, _, (losses, _, state) = case
    assert np.all(np.isfinite(losses)) and losses.size == STEPS
    start = tref.TrainState.initial(plan)
    assert state.to_bytes(plan) != start.to_bytes(plan), "10 steps left every parameter unchanged"


def test_host_equals_reference(case, tmp_path):
    plan, out, xs, labels, want = case
    exe = harness.build_host(plan, out, tmp_path / "host")
    check_run(plan, harness.run_host(plan, exe, xs, labels), want, "host")


@needs_qemu
def test_cortex_m4_equals_reference(case, tmp_path):
    plan, out, xs, labels, want = case
    elf = harness.build_qemu(plan, out, tmp_path / "m4", "qemu-cortex-m4")
    run = harness.run_qemu(plan, elf, xs, labels, "qemu-cortex-m4")
    check_run(plan, run, want, "Cortex-M4")
    assert len(run.instructions()) == STEPS and min(run.instructions()) > 0
    mem = read_elf(elf)
    assert mem.symbol(f"{plan.name}_arena").size == plan.arena_size
    assert mem.symbol(f"{plan.name}_train_state_data").size == plan.training.state_bytes
    # check-elf counts the trained state as the model's other RAM
    m = model_breakdown(mem, plan.name)
    assert m["other_ram_bytes"] == plan.training.state_bytes and m["ram_bytes"] == plan.sram_bytes()


def _padded_pool_net():
    """Average pools with padding 1 that do not count it (count_include_pad=False): the pooling
    window is clipped at every border, so each input pixel's gradient share differs."""
    nn = torch.nn
    torch.manual_seed(0)
    pool = dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(**pool),
                           nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(**pool),
                           nn.Flatten(), nn.Linear(8 * 3 * 3, 10), nn.Softmax(dim=1)).eval()
    return module, torch.zeros(1, 3, 9, 9)


def test_padded_average_pool_backward(tmp_path):
    out = tmp_path / "gen"
    plan = compile_training("padpool", out, net=_padded_pool_net, training="full", learning_rate=0.1)
    pools = [s for s in plan.steps if s.kernel == "avg_pool_s8"]
    assert len(pools) == 2 and all(s.params["pad_top"] == 1 for s in pools)
    xs, labels = requests(plan)
    want = reference_run(plan, xs, labels)
    exe = harness.build_host(plan, out, tmp_path / "host")
    check_run(plan, harness.run_host(plan, exe, xs, labels), want, "host, padded average pools")


def test_header_and_symbols(case, tmp_path):
    plan, out, _, _, _ = case
    P = plan.name.upper()
    header = (out / f"{plan.name}.h").read_text()
    assert f"#define {P}_ARENA_SIZE {plan.arena_size}\n" in header
    assert f"#define {P}_TRAIN_STATE_SIZE {plan.training.state_bytes}\n" in header
    assert f"int {plan.name}_train_step(int label, float *loss);" in header
    assert plan.sram_bytes() == plan.arena_size + plan.training.state_bytes
    obj = tmp_path / "model.o"
    subprocess.run(["gcc", "-std=c99", "-c", "-O2", *[f"-I{d}" for d in include_dirs(out)],
                    str(out / f"{plan.name}.c"), "-o", str(obj)], check=True)
    elf = read_elf(obj)
    assert elf.symbol(f"{plan.name}_arena").size == plan.arena_size
    assert elf.symbol(f"{plan.name}_train_state_data").size == plan.training.state_bytes

