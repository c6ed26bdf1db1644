"""Training plans: gradients against PyTorch autograd (cosine >= 0.99 for
every trained tensor), the pruned backward graph, operator reordering's
memory, and the errors (budget exit 3, no backward op exit 2)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

torch = pytest.importorskip("torch")

from mcuforge.ir import BudgetError, McuforgeError  # noqa: E402
from mcuforge.tools import oracle  # noqa: E402
from mcuforge.training.policy import weight_layers  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_cli import mcuforge  # noqa: E402
from test_training import compile_training, requests  # noqa: E402

ORACLE_CASES = [("mbv1", {"training": "full"}), ("mbv2_blocks", {"training": "full"}),
                ("dscnn", {"training": "full"}), ("resnet8", {"training": "full"}),
                ("mbv2_blocks", {"training": "sparse", "train_weight_layers": (-4, -2, -1),
                                 "train_weight_ratio": (0.5, 0.25, 1.0)})]


@pytest.mark.parametrize("name,options", ORACLE_CASES, ids=[f"{n}-{o['training']}" for n, o in ORACLE_CASES])
def test_gradients_match_autograd(name, options, tmp_path):
    plan = compile_training(name, tmp_path / "gen", **options)
    xs, labels = requests(plan)
    rows = []
    for i in range(2):
        rows += oracle.compare(plan, xs[i], int(labels[i]))
    trained = {(t.layer, w) for t in plan.training.layers for w, on in (("bias", t.bias), ("weight", t.channels))
               if on}
    assert {(r["layer"], r["tensor"]) for r in rows} == trained
    worst = min(rows, key=lambda r: r["cosine"])
    print(f"{name} {options['training']}: worst cosine {worst['cosine']:.6f} ({worst['name']} {worst['tensor']})")
    assert worst["cosine"] >= 0.99, worst


def _chain_outputs(plan, first_step: int) -> set[str]:
    return {s.outputs[0] for s in plan.steps if s.index >= first_step}


def _grad_tensors(plan) -> set[str]:
    """Forward tensors that get a gradient (train:grad:<tensor>[:masked])."""
    names = set()
    for t in plan.training.grads:
        parts = t.split(":")
        assert parts[0] == "train" and parts[1] == "grad", t
        names.add(parts[2])
    return names


def _alive_after_forward(plan) -> set[str]:
    """Forward activations whose arena lifetime reaches into the backward pass."""
    n = len(plan.steps)
    forward = {plan.input} | {s.outputs[0] for s in plan.steps}
    return {t for b in plan.memory.buffers for t in b.tensors if t in forward and b.last >= n}


def test_bias_of_the_last_layer_keeps_only_the_logits(tmp_path):
    plan = compile_training("mbv1", tmp_path / "gen", training="bias", train_bias_layers=1)
    tp = plan.training
    logits = plan.outputs[0]
    assert _grad_tensors(plan) == {logits}
    assert _alive_after_forward(plan) == {logits}
    assert [s.kernel for s in tp.steps] == ["softmax_s8", "train_loss", "train_conv_update"]
    assert [(t.layer, t.bias, t.channels) for t in tp.layers] == [(len(weight_layers(plan.steps)) - 1, True, 0)]


def test_sparse_prunes_below_the_lowest_trained_layer(tmp_path):
    # mbv1 is a chain: weights of the last pointwise conv, biases of the last 3 layers
    plan = compile_training("mbv1", tmp_path / "gen", training="sparse", train_bias_layers=3,
                            train_weight_layers=(-2,), train_weight_ratio=(0.5,))
    tp = plan.training
    layers = weight_layers(plan.steps)
    lowest = layers[-3]
    # gradients exist exactly for the outputs of the lowest trained layer and everything after it
    assert _grad_tensors(plan) == _chain_outputs(plan, lowest.index)
    # activations kept for the backward pass: the outputs of the conv/FC layers from the lowest trained
    # one on (their clamp masks the gradient; the average pool has no clamp) and the input of the one
    # layer whose weights are trained; nothing else
    want_alive = ({s.outputs[0] for s in plan.steps if s.index >= lowest.index and s.kernel != "avg_pool_s8"}
                  | {layers[-2].inputs[0]})
    assert _alive_after_forward(plan) == want_alive
    # no input gradient of the lowest trained layer, no weight gradient for frozen weights
    assert not any(s.kernel == "train_conv_input_grad" and s.name.startswith(lowest.name + ":") for s in tp.steps)
    weight_reads = {s.name.rsplit(":", 1)[0] for s in tp.steps if s.kernel == "train_conv_update" and len(s.inputs) > 2}
    assert weight_reads == {layers[-2].name}
    t = next(t for t in tp.layers if t.channels)
    assert t.channels == layers[-2].params["filter"].shape[0] // 2
    # reordering: no parameter gradient is ever stored
    assert not any(s.outputs for s in tp.steps if s.kernel == "train_conv_update")


def test_reordering_lowers_the_peak(tmp_path):
    opts = dict(training="sparse", train_bias_layers=8, train_weight_layers=(-5, -4, -3, -2, -1))
    ordered = compile_training("mbv1", tmp_path / "a" / "gen", **opts)
    unordered = compile_training("mbv1", tmp_path / "b" / "gen", train_reorder=False, **opts)
    deltas = [s for s in unordered.training.steps if s.kernel == "train_conv_update"]
    assert all(len(s.outputs) == 1 for s in deltas)
    assert ordered.training.state_bytes == unordered.training.state_bytes
    assert ordered.arena_size < unordered.arena_size
    # the same updates either way: one step from the same state gives the same parameters
    from mcuforge.reference import training as tref

    xs, labels = requests(ordered)
    a, b = tref.TrainState.initial(ordered), tref.TrainState.initial(unordered)
    assert tref.train_step(ordered, a, xs[0], int(labels[0])) == tref.train_step(unordered, b, xs[0], int(labels[0]))
    assert a.to_bytes(ordered) == b.to_bytes(unordered)


def test_gradient_sums_and_masks_overwrite_an_addend(tmp_path):
    """A residual's two gradient partials are summed into the buffer of one of
    them, and a clamp mask writes over its input gradient, when that is the
    input's last use (the kernels read element i before writing element i);
    test_training's host and Cortex-M4 runs of mbv2_blocks check the bytes."""
    plan = compile_training("mbv2_blocks", tmp_path / "gen", training="full")
    offset = {t: b.offset for b in plan.memory.buffers for t in b.tensors}
    done = {}
    for s in plan.training.steps:
        if s.kernel in ("train_grad_sum", "train_mask"):
            assert s.inplace == "elementwise"
            if s.inplace_input >= 0:
                assert offset[s.outputs[0]] == offset[s.inputs[s.inplace_input]]
                done[s.kernel] = done.get(s.kernel, 0) + 1
    assert done.get("train_grad_sum", 0) > 0 and done.get("train_mask", 0) > 0, done


def test_momentum_recurrence(tmp_path):
    """SGD with momentum: from rest the velocity is the plain update; on the
    next step the applied update minus the plain SGD update of the same
    parameters and input (a plan without momentum) is round(momentum * v)."""
    from mcuforge.reference import training as tref

    opts = dict(training="sparse", train_bias_layers=2, train_weight_layers=(-1,), learning_rate=0.1)
    mom = compile_training("mbv1", tmp_path / "a" / "gen", momentum=0.9, **opts)
    plain = compile_training("mbv1", tmp_path / "b" / "gen", **opts)
    tp = mom.training
    velocity_bytes = 4 * sum(t.trained_weights + t.out_c * t.bias for t in tp.layers)
    assert tp.memory()["optimizer_state_bytes"] == velocity_bytes > 0
    assert tp.state_bytes == plain.training.state_bytes + velocity_bytes
    xs, labels = requests(mom)
    start = tref.TrainState.initial(mom)
    s = start.copy()
    tref.train_step(mom, s, xs[0], int(labels[0]))
    before = s.copy()
    tref.train_step(mom, s, xs[1], int(labels[1]))
    p = tref.TrainState({k: v.copy() for k, v in before.arrays.items() if k[1] != "velocity"})
    tref.train_step(plain, p, xs[1], int(labels[1]))
    q = round(0.9 * (1 << 15))
    checked = 0
    for t in tp.layers:
        v0, v1 = before.arrays[(t.layer, "velocity")].astype(np.int64), s.arrays[(t.layer, "velocity")]
        parts = []  # (parameter before, after with momentum, after plain SGD, its slice of the velocity)
        if t.channels:
            parts.append(("master", slice(0, t.trained_weights)))
        if t.bias:
            parts.append(("bias", slice(t.trained_weights, t.trained_weights + t.out_c)))
        for what, at in parts:
            def value(st, what=what):  # master weights: filter * 256 + fraction
                return st.master(mom, t) if what == "master" else st.arrays[(t.layer, what)].astype(np.int64)

            b0, b1, b2 = value(start), value(before), value(s)
            d2 = b1 - value(p)
            limit = 127 * 256 if what == "master" else 1 << 31  # masters saturate at +-127 int8 steps
            free = (np.abs(b1) < limit) & (np.abs(b2) < limit)  # not clamped
            assert np.array_equal((b0 - b1)[free], v0[at][free])  # from rest: the velocity is the update
            assert np.array_equal((b1 - b2)[free], v1[at].astype(np.int64)[free])
            assert np.array_equal((b1 - b2 - d2)[free], ((v0[at] * q + (1 << 14)) >> 15)[free])
            checked += int(free.sum()) if what == "bias" else int((free & (v0[at] != 0)).sum())
    assert checked > 0


def test_budget_too_small_exits_3_with_both_numbers(tmp_path):
    with pytest.raises(BudgetError) as err:
        compile_training("mbv1", tmp_path / "gen", training="full", sram_budget=20 * 1024)
    msg = str(err.value)
    assert err.value.exit_code == 3
    assert "20480" in msg and "needs" in msg and "--train-weight-layers" in msg and "--sram-budget" in msg
    assert not (tmp_path / "gen").exists()


def _maxpool_onnx(path: Path) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"),
             numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("MaxPool", ["r"], ["m"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["m"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "mp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_cli_training_errors_and_success(tmp_path):
    model = _maxpool_onnx(tmp_path / "mp.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "full")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "pool1" in res.stderr and "max_pool" in res.stderr and not out.exists()
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "sparse",
               "--train-bias-layers", "1", "--train-weight-layers", "-1", "--sram-budget", "256")
    assert res.returncode == 3 and "Traceback" not in res.stderr and not out.exists(), res.stderr
    assert "allows 256" in res.stderr and "--train-bias-layers" in res.stderr
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "bias", "--train-bias-layers", "1",
               "--input-stream")
    assert res.returncode == 2 and "--schedule patch" in res.stderr and not out.exists()
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "bias", "--momentum", "1.5")
    assert res.returncode == 2 and "--momentum" in res.stderr and not out.exists(), res.stderr
    # the frozen conv + max pool below the trained classifier run on patches
    res = mcuforge("compile", model, "-o", tmp_path / "patch", "--calibration", calib, "--training", "bias",
                   "--train-bias-layers", "1", "--schedule", "patch")
    assert res.returncode == 0, res.stderr
    assert "run on a" in res.stdout and "the lowest the backward pass reaches" in res.stdout
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "sparse",
               "--train-bias-layers", "1", "--train-weight-layers", "-1", "--learning-rate", "0.02")
    assert res.returncode == 0, res.stderr
    header = (out / "mp.h").read_text()
    assert "#define MP_TRAIN_STATE_SIZE" in header and "learning rate 0.02" in header
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["training"]["policy"]["weight_layers"] == {"1": 1.0}
    assert report["sram_bytes"] == report["arena_bytes"] + report["training"]["memory"]["state_bytes"]


def test_bad_policy_options_exit_2(tmp_path):
    with pytest.raises(McuforgeError) as err:
        compile_training("mbv1", tmp_path / "gen", training="sparse", train_weight_layers=(12,))
    assert err.value.exit_code == 2 and "--train-weight-layers" in str(err.value)


def test_contribution_analysis_picks_a_policy_within_the_budget(tmp_path):
    from test_cli import small_onnx

    model = small_onnx(tmp_path / "small.onnx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 3, 12, 12)).astype(np.float32)
    y = (x[:, 0].mean((1, 2)) > 0).astype(np.int64) + 2 * (x[:, 1].mean((1, 2)) > 0)  # 4 learnable classes
    np.savez(tmp_path / "data.npz", x=x, y=y)
    calib = tmp_path / "calib.npy"
    np.save(calib, x[:16])
    out = tmp_path / "out"
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--training", "sparse",
                   "--train-data", tmp_path / "data.npz", "--sram-budget", "8K", "--learning-rate", "0.05")
    assert res.returncode == 0, res.stderr
    import json

    report = json.loads((out / "report.json").read_text())
    tr = report["training"]
    assert tr["policy"]["source"] == "contribution analysis"
    assert report["sram_bytes"] <= 8 * 1024
    rows = tr["gains"]["candidates"]
    assert len(rows) == 2 + 2 * 2 and any(r.get("chosen") for r in rows)
    assert all(r["gain"] > 0 for r in rows if r.get("chosen"))
    assert "Chosen by contribution analysis" in (out / "small.h").read_text()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=x, y=y + 10)
    res = mcuforge("compile", model, "-o", tmp_path / "o2", "--calibration", calib, "--training", "sparse",
                   "--train-data", bad)
    assert res.returncode == 2 and "labels" in res.stderr
