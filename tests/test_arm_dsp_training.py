"""On-device training with the arm-dsp kernel set: the layers whose filter or
bias the training step updates (in RAM, portable layout) run the portable
kernel, every other layer its arm-dsp variant (filters reordered offline, the
input offset folded into the bias), and the backward pass of a frozen layer
reads the portable copy of its filter. 10 training steps of the generated C
(host; the sparse case also on Cortex-M4 under QEMU) leave exactly the NumPy reference's
parameters and losses, and inference after training equals the reference's."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from mcuforge.codegen import arm_dsp  # noqa: E402
from mcuforge.tools import harness  # noqa: E402
from marks import needs_qemu  # noqa: E402
from test_training import check_run, compile_training, reference_run, requests  # noqa: E402


# sparse: the last layer's bias and half of weight layer 2's channels, so the
# backward pass runs through frozen arm-dsp layers in between
OPTIONS = {"bias": {}, "sparse": {"train_bias_layers": 1, "train_weight_layers": (2,), "train_weight_ratio": (0.5,)},
           "full": {}}


@pytest.fixture(scope="module", params=list(OPTIONS))
def case(request, tmp_path_factory):
    mode = request.param
    out = tmp_path_factory.mktemp(f"dsp_{mode}") / "gen"
    plan = compile_training("mbv1", out, training=mode, learning_rate=0.1, kernels="arm-dsp", **OPTIONS[mode])
    xs, labels = requests(plan)
    return plan, out, xs, labels, reference_run(plan, xs, labels)


def test_trained_layers_portable_others_arm_dsp(case):
    plan, out, *_ = case
    trained = {t.step for t in plan.training.layers if t.bias or t.channels}
    assert trained, "the policy trains no layer"
    report = json.loads((out / "report.json").read_text())
    by_index = {L["index"]: L for L in report["layers"]}
    assert sorted(report["portable_trained_layers"]) == sorted(by_index[i]["name"] for i in trained)
    for i in trained:
        assert by_index[i]["portable_kernel"], f"trained layer {by_index[i]['name']} on {by_index[i]['function']}"
    dsp = [s for s in plan.steps if s.index not in trained and arm_dsp.select(s) is not None]
    if plan.config.training != "full":  # full training updates every layer: all portable
        assert dsp, "no frozen layer left on an arm-dsp kernel: the test shows nothing"
    if plan.config.training == "sparse":  # a frozen arm-dsp layer's input gradient reads its portable filter
        assert "_filter_dsp" in (out / f"{plan.name}.c").read_text() + "".join(
            f.read_text() for f in out.glob(f"{plan.name}_*.c"))
    for s in dsp:
        assert not by_index[s.index]["portable_kernel"] and by_index[s.index]["function"].startswith("mcf_dsp_")


def test_host_equals_reference(case, tmp_path):
    plan, out, xs, labels, want = case
    exe = harness.build_host(plan, out, tmp_path / "host")
    check_run(plan, harness.run_host(plan, exe, xs, labels), want, "host, arm-dsp")


# one QEMU run: sparse has trained, frozen arm-dsp and backward-through-frozen layers
@needs_qemu
@pytest.mark.parametrize("case", ["sparse"], indirect=True)
def test_cortex_m4_equals_reference(case, tmp_path):
    plan, out, xs, labels, want = case
    elf = harness.build_qemu(plan, out, tmp_path / "m4", "qemu-cortex-m4")
    check_run(plan, harness.run_qemu(plan, elf, xs, labels, "qemu-cortex-m4"), want, "Cortex-M4, arm-dsp")
