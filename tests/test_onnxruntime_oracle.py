"""The NumPy reference against an independent implementation: onnxruntime's
int8 execution of QDQ models made by onnxruntime's own quantizer.

Per layer: each step of our Plan is fed onnxruntime's int8 inputs of that
layer and must give onnxruntime's int8 output within 1 LSB (the two round
the requantization differently: TFLite fixed point here, float there).
The observed maxima are printed (pytest -s) and collected in
ORT_MAX_DIFF for the record.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from mcuforge import reference  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.kernels import KERNELS  # noqa: E402
from mcuforge.pipeline import plan_model  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

CASES = [(name, True) for name in sorted(ZOO)] + [("resnet8", False), ("mbv2_blocks", False)]


def fold_linear_batchnorm(module):
    """Fold Linear -> BatchNorm1d pairs of a Sequential in PyTorch, since
    onnxruntime's quantizer keeps such a batch norm as a quantized op of its
    own (our passes fold it): the two graphs then have the same roundings."""
    from torch.nn.utils.fusion import fuse_linear_bn_eval

    if isinstance(module, torch.nn.Sequential):
        kids = list(module)
        out = []
        i = 0
        while i < len(kids):
            if (i + 1 < len(kids) and isinstance(kids[i], torch.nn.Linear)
                    and isinstance(kids[i + 1], torch.nn.BatchNorm1d)):
                out.append(fuse_linear_bn_eval(kids[i], kids[i + 1]))
                i += 2
            else:
                out.append(kids[i])
                i += 1
        return torch.nn.Sequential(*out).eval()
    return module


def export(module, example, path: Path) -> Path:
    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return path


def quantize_qdq(src: Path, dst: Path, shape, per_channel: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(123)
            self.data = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.data, None)

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel)
    return dst


def ort_int8_tensors(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the QDQ model in onnxruntime; return every QuantizeLinear output
    (the int8 activations), keyed by the float tensor each one quantizes."""
    model = onnx.load(str(path))
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    existing = {o.name for o in model.graph.output}
    for n in q_nodes:
        if n.output[0] not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.INT8, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [n.output[0] for n in q_nodes]
    values = sess.run(names, {"input": x})
    out = {n.input[0]: v for n, v in zip(q_nodes, values)}
    # the model's outputs are DequantizeLinear outputs: key them too
    by_q_output = dict(zip(names, values))
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in by_q_output:
            out.setdefault(n.output[0], by_q_output[n.input[0]])
    return out


def to_ir(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


ORT_MAX_DIFF: dict[str, dict] = {}


@pytest.mark.parametrize("name,per_channel", CASES)
def test_reference_matches_onnxruntime_per_layer(name, per_channel, tmp_path):
    module, example = ZOO[name]()
    module = fold_linear_batchnorm(module)
    src = export(module, example, tmp_path / f"{name}.onnx")
    qdq = quantize_qdq(src, tmp_path / f"{name}_qdq.onnx", tuple(example.shape), per_channel)
    plan = plan_model(qdq, BuildConfig(name=name))
    # A reshape of a channels-last map holds the bytes in our order, not in
    # onnxruntime's (NCHW): read such a tensor through the reshape's input.
    reshaped = {n.outputs[0]: n.inputs[0] for n in plan.graph.nodes if n.op == "reshape"}
    rng = np.random.default_rng(99)
    per_layer: dict[str, int] = {}
    compared = 0
    end_to_end = None
    for trial in range(3):
        x = rng.standard_normal(tuple(example.shape)).astype(np.float32)
        ort_vals = {k: to_ir(v) for k, v in ort_int8_tensors(qdq, x).items()}
        def ort_value(t):
            while t in reshaped and reshaped[t] in ort_vals:
                t = reshaped[t]
            return ort_vals.get(t)

        for step in plan.steps:
            inputs = [ort_value(t) for t in step.inputs]
            if any(v is None for v in inputs) or step.outputs[0] not in ort_vals:
                continue
            inputs = [v.reshape(-1) for v in inputs]
            fn = KERNELS[step.kernel]
            got = fn(step.params, inputs) if step.kernel == "concat_s8" else fn(step.params, *inputs)
            want = ort_vals[step.outputs[0]].reshape(-1)
            diff = int(np.max(np.abs(np.asarray(got, np.int32) - want.astype(np.int32))))
            per_layer[step.name] = max(per_layer.get(step.name, 0), diff)
            compared += 1
        # whole model, from onnxruntime's quantized input
        ours = reference.run(plan, ort_vals[plan.input].reshape(-1)).outputs[plan.outputs[0]]
        theirs = ort_vals.get(plan.outputs[0])
        assert theirs is not None, "onnxruntime's int8 model output not found"
        diff = int(np.max(np.abs(ours.astype(np.int32).reshape(-1) - to_ir(theirs).astype(np.int32).reshape(-1))))
        end_to_end = diff if end_to_end is None else max(end_to_end, diff)
    assert compared >= len(plan.steps) * 3 // 2, f"only {compared} layer comparisons for {len(plan.steps)} steps"
    worst = max(per_layer.values())
    ORT_MAX_DIFF[f"{name}/{'per-channel' if per_channel else 'per-tensor'}"] = {
        "max_layer_lsb": worst, "end_to_end_lsb": end_to_end, "layers": len(per_layer)}
    print(f"\n{name} ({'per-channel' if per_channel else 'per-tensor'}): max per-layer diff {worst} LSB over "
          f"{len(per_layer)} layers; end to end {end_to_end} LSB")
    bad = {k: v for k, v in per_layer.items() if v > 1}
    assert not bad, f"layers differing from onnxruntime by more than 1 LSB: {bad}"
    assert len(per_layer) >= len(plan.steps) // 2
