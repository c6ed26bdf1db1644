"""ONNX parity with the TFLite operators of issue 19: PRelu, Transpose,
ReduceMax, ReduceMean over any axis, 1-D Conv with GlobalAveragePool, Tile,
and a BatchNormalization with no layer to fold into. Each hand-built float model:
the frontend's canonical float graph equals onnxruntime (1e-4 relative, as
the other ONNX ops in test_frontends.py), and compiled with mcuforge's
post-training quantization its generated C equals the NumPy reference byte
for byte and stays close to onnxruntime's float result."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mcuforge import reference
from mcuforge.tools import hostrun
from mcuforge.config import BuildConfig
from mcuforge.float_exec import run_float
from mcuforge.frontends import onnx as onnx_frontend
from mcuforge.passes.canonicalize import CANONICAL_OPS, canonicalize
from mcuforge.pipeline import compile_model
from mcuforge.quantize import dequantize_values, quantize_values, to_ir_layout, to_source_layout

ort = pytest.importorskip("onnxruntime")
REL_TOL = 1e-4


def _model(nodes, in_shape, inits=(), opset=17):
    graph = helper.make_graph(nodes, "case", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _w(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _cases():
    n = helper.make_node
    img = [1, 4, 9, 7]
    return {
        "prelu_per_channel": _model(
            [n("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), n("PRelu", ["c", "s"], ["p"]),
             n("Conv", ["p", "w2"], ["y"])], img,
            [("w", _w(6, 4, 3, 3, scale=0.3)), ("s", np.abs(_w(6, 1, 1, seed=1, scale=0.2))),
             ("w2", _w(3, 6, 1, 1, seed=2))]),
        "prelu_scalar_2d": _model(
            [n("Flatten", ["x"], ["f"]), n("Gemm", ["f", "w"], ["g"]), n("PRelu", ["g", "s"], ["y"])], img,
            [("w", _w(252, 8, scale=0.1)), ("s", np.array([0.25], np.float32))]),
        "transpose_permute": _model(
            [n("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]), n("Conv", ["t", "w"], ["y"])], img,
            [("w", _w(5, 4, 2, 3))]),
        "reduce_max_spatial": _model(
            [n("Conv", ["x", "w"], ["c"]), n("ReduceMax", ["c"], ["r"], axes=[2, 3], keepdims=0),
             n("Gemm", ["r", "g"], ["y"])], img, [("w", _w(6, 4, 3, 3, scale=0.3)), ("g", _w(6, 3))]),
        "global_max_pool_1d": _model(
            [n("Conv", ["x", "w"], ["c"], pads=[1, 1]), n("GlobalMaxPool", ["c"], ["y"])], [1, 3, 20],
            [("w", _w(5, 3, 3, scale=0.3))]),
        "reduce_mean_channels": _model(
            [n("Conv", ["x", "w"], ["c"]), n("ReduceMean", ["c", "a"], ["y"], keepdims=1)], img,
            [("w", _w(6, 4, 1, 1)), ("a", np.array([1], np.int64))], opset=18),
        "reduce_mean_1d_keepdims0": _model(
            [n("Conv", ["x", "w"], ["c"]), n("Relu", ["c"], ["r"]),
             n("ReduceMean", ["r"], ["m"], axes=[2], keepdims=0), n("Gemm", ["m", "g"], ["y"])], [1, 3, 24],
            [("w", _w(8, 3, 5, scale=0.4)), ("g", _w(8, 4))]),
        "conv1d_gap": _model(
            [n("Conv", ["x", "w1", "b1"], ["c1"], pads=[2, 2]), n("Relu", ["c1"], ["r1"]),
             n("Conv", ["r1", "w2"], ["c2"], strides=[2], auto_pad="SAME_UPPER"), n("Relu", ["c2"], ["r2"]),
             n("GlobalAveragePool", ["r2"], ["g"]), n("Flatten", ["g"], ["f"]), n("Gemm", ["f", "fc"], ["y"])],
            [1, 3, 32],
            [("w1", _w(8, 3, 5, scale=0.4)), ("b1", _w(8, seed=3, scale=0.1)), ("w2", _w(8, 8, 3, seed=4, scale=0.2)),
             ("fc", _w(8, 4, seed=5))]),
        "tile_upsample": _model(
            [n("Conv", ["x", "w"], ["c"]), n("Tile", ["c", "r"], ["t"]), n("Conv", ["t", "w2"], ["y"])], img,
            [("w", _w(5, 4, 3, 3, scale=0.3)), ("r", np.array([1, 2, 2, 3], np.int64)),
             ("w2", _w(3, 10, 3, 3, seed=3, scale=0.2))]),
        "batch_norm_on_input": _model(
            [n("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"]), n("Conv", ["n", "w"], ["y"])], img,
            [("g", _w(4, seed=6) + 2), ("b", _w(4, seed=7)), ("m", _w(4, seed=8)),
             ("v", np.abs(_w(4, seed=9)) + 0.5), ("w", _w(3, 4, 3, 3, scale=0.3))]),
        "batch_norm_after_pool": _model(
            [n("Conv", ["x", "w"], ["c"]), n("Relu", ["c"], ["r"]),
             n("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             n("BatchNormalization", ["p", "g", "b", "m", "v"], ["y"])], img,
            [("w", _w(5, 4, 3, 3, scale=0.3)), ("g", _w(5, seed=6) + 2), ("b", _w(5, seed=7)),
             ("m", _w(5, seed=8)), ("v", np.abs(_w(5, seed=9)) + 0.5)]),
    }


CASES = _cases()


def _in_shape(case):
    dims = CASES[case].graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims)


def _ort(path, xs):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {"x": x[None]})[0].reshape(-1) for x in xs])


@pytest.mark.parametrize("case", sorted(CASES))
def test_float_graph_equals_onnxruntime(case, tmp_path):
    path = tmp_path / f"{case}.onnx"
    onnx.save(CASES[case], str(path))
    graph = canonicalize(onnx_frontend.load(path))
    assert {nd.op for nd in graph.nodes} <= set(CANONICAL_OPS)
    xs = np.random.default_rng(7).standard_normal((3,) + _in_shape(case)[1:]).astype(np.float32)
    want = _ort(path, xs)
    got = np.stack([to_source_layout(graph, run_float(graph, {graph.inputs[0]: to_ir_layout(graph, x[None])})[
        graph.outputs[0]]).reshape(-1) for x in xs])
    assert np.abs(got - want).max() <= REL_TOL * max(np.abs(want).max(), 1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_c_equals_reference_and_is_close_to_onnxruntime(case, tmp_path):
    path = tmp_path / f"{case}.onnx"
    onnx.save(CASES[case], str(path))
    rng = np.random.default_rng(11)
    shape = _in_shape(case)
    calibration = rng.standard_normal((48,) + shape[1:]).astype(np.float32)
    np.save(tmp_path / "calib.npy", calibration)
    plan = compile_model(path, BuildConfig(name=case, calibration=str(tmp_path / "calib.npy")), tmp_path / "gen")
    xs = calibration[:6]  # inside the calibrated ranges: no saturation, only rounding
    q = quantize_values(to_ir_layout(plan.graph, xs), plan.graph.tensors[plan.input].quant)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, q)[0].reshape(len(xs), -1)
    ref = np.stack([reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1) for i, x in enumerate(q)])
    assert np.array_equal(got, ref)
    out = plan.graph.tensors[plan.outputs[0]]
    real = dequantize_values(got, out.quant).reshape((len(xs),) + out.shape[1:])
    real = to_source_layout(plan.graph, real).reshape(len(xs), -1)
    want = _ort(path, xs)
    err = np.abs(real - want).max()
    assert err <= 0.08 * np.abs(want).max() + 2 * float(out.quant.scale[0]), f"{case}: int8 vs onnxruntime {err}"
