"""Frontends, canonicalization and the float executor.

* every zoo model: PyTorch -> Graph -> canonicalize -> run_float equals
  PyTorch (1e-4 relative); the ONNX file path equals onnxruntime;
* QDQ models from onnxruntime's quantize_static keep every scale and zero
  point, and the fake-quantized float run equals onnxruntime;
* single ONNX ops built by hand equal onnxruntime (layouts, pads, pools...);
* bad input raises one McuforgeError naming the file / nodes.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mcuforge import registry
from mcuforge.float_exec import run_float
from mcuforge.frontends import onnx as onnx_frontend
from mcuforge.ir import McuforgeError, UnsupportedModelError
from mcuforge.passes.canonicalize import CANONICAL_OPS, canonicalize
from mcuforge.zoo import ZOO

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge import zoo  # noqa: E402

REL_TOL = 1e-4


def to_ir(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x


def from_ir(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run_graph(graph, x_nchw: np.ndarray, **kw) -> np.ndarray:
    out = run_float(graph, {graph.inputs[0]: to_ir(x_nchw)}, **kw)
    return from_ir(out[graph.outputs[0]])


def export_onnx(module, example, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return path


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # QDQ models: on x86 onnxruntime by default turns int8 activations into uint8 before fusing QDQ into
    # QLinearConv/QGemm (its QDQIsInt8Allowed() is false off ARM), and its u8s8 kernels on CPUs without
    # VNNI (AVX2) sum pairs of u8*s8 products with vpmaddubsw, which saturates at int16: 255*127*2 gives
    # 32767, several output steps off on real layers. Kept int8, the fused kernels accumulate in int32 on
    # every CPU, as the QDQ graph means.
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def assert_canonical(graph) -> None:
    ops = {n.op for n in graph.nodes}
    assert ops <= set(CANONICAL_OPS), ops - set(CANONICAL_OPS)
    assert "batch_norm" not in ops
    # every ReLU/ReLU6/Clip of the zoo follows a layer it can fuse into
    assert "clamp" not in ops, [n.name for n in graph.nodes if n.op == "clamp"]


@pytest.fixture(scope="module")
def zoo_models():
    return {name: fn() for name, fn in ZOO.items()}


# ---- PyTorch and ONNX float paths --------------------------------------------


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_from_torch_matches_torch(name, zoo_models):
    module, example = zoo_models[name]
    graph = from_torch(module, example, name=name)
    assert graph.source_format == "torch" and graph.source_layout == "NCHW"
    assert graph.name == name and len(graph.source_hash) == 64
    canonical = canonicalize(graph)
    assert_canonical(canonical)
    assert canonicalize(canonical).fingerprint() == canonical.fingerprint()  # idempotent
    with torch.no_grad():
        expected = module(example).numpy()
    x = example.numpy()
    assert rel_err(run_graph(canonical, x), expected) < REL_TOL
    # the un-canonicalized graph computes the same thing
    assert rel_err(run_graph(graph, x), expected) < REL_TOL
    # all intermediates are returned, channels-last
    values = run_float(canonical, {canonical.inputs[0]: to_ir(x)})
    assert set(values) == {t.name for t in canonical.activations()}
    for t in canonical.activations():
        assert values[t.name].shape == t.shape and values[t.name].dtype == np.float32


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_onnx_file_matches_onnxruntime(name, zoo_models, tmp_path):
    module, example = zoo_models[name]
    path = export_onnx(module, example, tmp_path / f"{name}.onnx")
    graph = registry.frontend_for(path).load(path)
    assert graph.source_format == "onnx" and graph.source == str(path)
    assert graph.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    canonical = canonicalize(graph)
    assert_canonical(canonical)
    x = np.random.default_rng(1).standard_normal(tuple(example.shape)).astype(np.float32)
    assert rel_err(run_graph(canonical, x), ort_run(path, x)) < REL_TOL
    if x.ndim == 4:  # inputs become channels-last
        n, c, h, w = x.shape
        assert canonical.tensors[canonical.inputs[0]].shape == (n, h, w, c)


@pytest.mark.parametrize("name", ["odd_shapes", "concat_net"])
def test_dynamo_exporter(name, zoo_models):
    module, example = zoo_models[name]
    canonical = canonicalize(from_torch(module, example, name=name, exporter="dynamo"))
    assert_canonical(canonical)
    with torch.no_grad():
        expected = module(example).numpy()
    assert rel_err(run_graph(canonical, example.numpy()), expected) < REL_TOL


def test_mobilenet_v2_and_flatten_fold():
    module, example = zoo.mobilenet_v2(width=0.35, resolution=64, num_classes=100)
    canonical = canonicalize(from_torch(module, example, name="mobilenet_v2"))
    assert_canonical(canonical)
    assert sum(n.op == "add" for n in canonical.nodes) == 10  # the residual blocks
    with torch.no_grad():
        expected = module(example).numpy()
    assert rel_err(run_graph(canonical, example.numpy()), expected) < REL_TOL


def test_flatten_of_spatial_map_folds_into_fc_weights(zoo_models):
    module, example = zoo_models["odd_shapes"]
    graph = from_torch(module, example)
    assert any(n.op == "transpose" for n in graph.nodes)  # NHWC -> NCHW before the 2x2 flatten
    canonical = canonicalize(graph)
    assert not any(n.op == "transpose" for n in canonical.nodes)
    depthwise = [n for n in canonical.nodes if n.op == "depthwise_conv2d"]
    assert {n.attrs["depth_multiplier"] for n in depthwise} == {1, 2}
    # nn.ZeroPad2d before the 5x5 depthwise conv became its (asymmetric) pads
    assert (2, 0, 1, 1) in [tuple(n.attrs["pads"]) for n in depthwise]


def test_pt2_exported_program(tmp_path, zoo_models):
    module, example = zoo_models["resnet8"]
    program = torch.export.export(module, (example,))
    path = tmp_path / "ResNet-8.pt2"
    torch.export.save(program, str(path))
    graph = registry.frontend_for(path).load(path)
    assert graph.name == "resnet_8" and graph.source_format == "torch"
    with torch.no_grad():
        expected = module(example).numpy()
    assert rel_err(run_graph(canonicalize(graph), example.numpy()), expected) < REL_TOL


def test_registry_finds_plugins():
    assert registry.frontend_for(Path("m.onnx")).name == "onnx"
    assert registry.frontend_for(Path("m.pt2")).name == "torch"
    assert "canonicalize" in [p.name for p in registry.passes()]


# ---- QDQ ---------------------------------------------------------------------------


class _Reader:
    def __init__(self, name: str, shape: tuple[int, ...], count: int = 4):
        rng = np.random.default_rng(123)
        self.data = iter([{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.data, None)


def quantize_qdq(src: Path, dst: Path, shape, per_channel: bool, activation_type=None) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Reader, CalibrationDataReader):
        pass

    import logging

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(src), str(dst), Reader("input", tuple(shape)), quant_format=QuantFormat.QDQ,
                    activation_type=activation_type or QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel)
    return dst


@pytest.mark.parametrize("name,per_channel", [("mbv1", True), ("resnet8", False), ("odd_shapes", True)])
def test_qdq_import_keeps_scales(name, per_channel, zoo_models, tmp_path):
    module, example = zoo_models[name]
    src = export_onnx(module, example, tmp_path / f"{name}.onnx")
    path = quantize_qdq(src, tmp_path / f"{name}_qdq.onnx", example.shape, per_channel)
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    graph = onnx_frontend.load(path)
    assert graph.source_format == "onnx-qdq"
    canonical = canonicalize(graph)
    assert_canonical(canonical)
    assert not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in canonical.nodes)
    # every activation has a per-tensor int8 Quant
    for t in canonical.activations():
        assert t.quant is not None and t.quant.per_tensor and t.dtype == "float32", t.name
    # the input's scale / zero point are the file's, bit for bit
    q_input = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    quant = canonical.tensors[canonical.inputs[0]].quant
    assert quant.scale[0] == np.float64(inits[q_input.input[1]])
    assert quant.zero_point[0] == int(inits[q_input.input[2]])
    # so are the output's
    dq_out = next(n for n in model.graph.node if n.output[0] == "output")
    assert canonical.tensors[canonical.outputs[0]].quant.scale[0] == np.float64(inits[dq_out.input[1]])
    # weights: int8 data, per-channel scales along the IR output-channel axis
    conv_dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    checked = 0
    for onnx_node in model.graph.node:
        if onnx_node.op_type != "Conv":
            continue
        w_dq = conv_dq[onnx_node.input[1]]
        b_dq = conv_dq[onnx_node.input[2]]
        ir_node = next(n for n in canonical.nodes if n.name == onnx_node.name)
        weight = canonical.tensors[ir_node.inputs[1]]
        bias = canonical.tensors[ir_node.inputs[2]]
        w_int = inits[w_dq.input[0]]
        perm = (1, 2, 3, 0) if ir_node.op == "depthwise_conv2d" else (0, 2, 3, 1)
        assert weight.dtype == "int8" and np.array_equal(weight.data, w_int.transpose(perm))
        assert weight.quant.axis == (3 if ir_node.op == "depthwise_conv2d" else 0)
        w_scale = np.broadcast_to(inits[w_dq.input[1]].astype(np.float64), (w_int.shape[0],))
        assert np.array_equal(weight.quant.scale, w_scale) and not weight.quant.zero_point.any()
        assert bias.dtype == "int32" and np.array_equal(bias.data, inits[b_dq.input[0]])
        in_scale = canonical.tensors[ir_node.inputs[0]].quant.scale[0]
        assert np.allclose(bias.quant.scale, in_scale * weight.quant.scale, rtol=1e-6, atol=0)
        assert np.array_equal(bias.quant.scale, np.broadcast_to(inits[b_dq.input[1]].astype(np.float64),
                                                                (w_int.shape[0],)))
        # the conv's output quant is the one of the Q that follows it
        q_next = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
                      and n.input[0] == onnx_node.output[0])
        out_quant = canonical.tensors[ir_node.outputs[0]].quant
        assert out_quant.scale[0] == np.float64(inits[q_next.input[1]])
        assert out_quant.zero_point[0] == int(inits[q_next.input[2]])
        checked += 1
    assert checked >= 4
    # simulated int8 run equals onnxruntime's QDQ run to one output step
    x = np.random.default_rng(5).standard_normal(tuple(example.shape)).astype(np.float32)
    got = run_graph(canonical, x, fake_quant=True)
    step = canonical.tensors[canonical.outputs[0]].quant.scale[0]
    assert np.abs(got - ort_run(path, x)).max() <= 1.01 * step


def test_qdq_batch_norm_after_gemm_is_folded(zoo_models, tmp_path):
    """onnxruntime leaves BatchNorm1d in the QDQ model; it folds into the FC
    (whose weights then become float again) and the activations keep their
    scales."""
    module, example = zoo_models["fc_autoencoder"]
    src = export_onnx(module, example, tmp_path / "ae.onnx")
    path = quantize_qdq(src, tmp_path / "ae_qdq.onnx", example.shape, True)
    canonical = canonicalize(onnx_frontend.load(path))
    assert [n.op for n in canonical.nodes] == ["fully_connected"] * 10
    assert all(t.quant is not None for t in canonical.activations())
    x = np.random.default_rng(5).standard_normal(tuple(example.shape)).astype(np.float32)
    step = canonical.tensors[canonical.outputs[0]].quant.scale[0]
    assert np.abs(run_graph(canonical, x, fake_quant=True) - ort_run(path, x)).max() <= 2.01 * step


def test_qdq_tensor_quantized_twice_becomes_requantize(tmp_path):
    """One tensor read through two Q/DQ pairs with different scales: the
    second becomes a clamp(-inf, inf) node carrying the second Quant."""
    def q(name, s, z):
        return [_init(f"{name}_s", np.array(s, np.float32)), _init(f"{name}_z", np.array(z, np.int8))]

    def qdq(src, dst, name):
        return [helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{dst}_q"]),
                helper.make_node("DequantizeLinear", [f"{dst}_q", f"{name}_s", f"{name}_z"], [dst])]

    w = np.random.default_rng(0).integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
    # b's range lies inside a's, so requantizing a's int8 values gives b's to one step
    inits = q("in", 0.02, 3) + q("a", 0.05, 3) + q("b", 0.04, 0) + q("o1", 0.05, 3) + q("o2", 0.04, 0) + [
        _init("w_q", w), _init("w_s", np.array([0.01, 0.02, 0.015], np.float32)),
        _init("w_z", np.zeros(3, np.int8))]
    nodes = (qdq("x", "xd", "in")
             + [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=0),
                helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1])]
             + qdq("c", "ca", "a") + qdq("c", "cb", "b")
             + [helper.make_node("MaxPool", ["ca"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
                helper.make_node("AveragePool", ["cb"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
             + qdq("m", "y1", "o1") + qdq("p", "y2", "o2"))
    model = _model(nodes, [_f("x", [1, 2, 6, 6])], [_f("y1", None), _f("y2", None)], inits, opset=13)
    path = tmp_path / "twice.onnx"
    onnx.save(model, str(path))
    canonical = canonicalize(onnx_frontend.load(path))
    clamps = [n for n in canonical.nodes if n.op == "clamp"]
    assert len(clamps) == 1 and clamps[0].inputs[0] == "c"
    assert canonical.tensors["c"].quant.scale[0] == np.float64(np.float32(0.05))
    assert canonical.tensors[clamps[0].outputs[0]].quant.scale[0] == np.float64(np.float32(0.04))
    x = np.random.default_rng(2).standard_normal((1, 2, 6, 6)).astype(np.float32)
    values = run_float(canonical, {"x": to_ir(x)}, fake_quant=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for name, ref in zip(["y1", "y2"], sess.run(None, {"x": x})):
        step = canonical.tensors[name].quant.scale[0]
        assert np.abs(from_ir(values[name]) - ref).max() <= 1.01 * step


def test_qdq_uint8_activations_rejected(zoo_models, tmp_path):
    from onnxruntime.quantization import QuantType

    module, example = zoo_models["tiny_1x1"]
    src = export_onnx(module, example, tmp_path / "tiny.onnx")
    path = quantize_qdq(src, tmp_path / "tiny_u8.onnx", example.shape, False, QuantType.QUInt8)
    with pytest.raises(McuforgeError, match="QInt8") as err:
        onnx_frontend.load(path)
    assert str(path) in str(err.value) and "uint8" in str(err.value)


# ---- single ops against onnxruntime ---------------------------------------------------


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "case", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _cases():
    cases = {}
    x = _f("x", [1, 4, 9, 7])
    cases["conv_same_upper_stride2"] = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
        [x], [_f("y", None)], [_init("w", _w(6, 4, 4, 3)), _init("b", _w(6))])
    cases["conv_same_lower"] = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[1, 2])],
        [x], [_f("y", None)], [_init("w", _w(3, 4, 2, 4))])
    cases["conv_dilated_valid"] = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="VALID", dilations=[2, 3])],
        [x], [_f("y", None)], [_init("w", _w(3, 4, 3, 2))])
    cases["depthwise_mult3_asym_pads"] = _model(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], group=4, pads=[0, 2, 1, 1], strides=[2, 1])],
        [x], [_f("y", None)], [_init("w", _w(12, 1, 3, 3)), _init("b", _w(12))])
    cases["avgpool_count_include_pad"] = _model(
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                          strides=[2, 2], count_include_pad=1)], [x], [_f("y", None)])
    cases["maxpool_ceil_then_relu"] = _model(
        [helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1),
         helper.make_node("Relu", ["m"], ["y"])], [x], [_f("y", None)])
    cases["global_max_pool_softmax_channels"] = _model(
        [helper.make_node("GlobalMaxPool", ["x"], ["g"]),
         helper.make_node("Softmax", ["g"], ["y"], axis=1)], [x], [_f("y", None)])
    cases["gemm_no_transB_alpha_beta"] = _model(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "c"], ["y"], alpha=0.5, beta=2.0)],
        [x], [_f("y", None)], [_init("w", _w(252, 5)), _init("c", _w(1, 5))])
    cases["matmul_add_bias_squeeze"] = _model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
         helper.make_node("Reshape", ["t", "s"], ["r"]),
         helper.make_node("MatMul", ["r", "w"], ["m"]),
         helper.make_node("Add", ["m", "b"], ["a"]),
         helper.make_node("Unsqueeze", ["a", "ax"], ["u"]),
         helper.make_node("Squeeze", ["u", "ax"], ["y"])],
        [x], [_f("y", None)],
        [_init("s", np.array([1, -1], np.int64)), _init("w", _w(252, 3)), _init("b", _w(3)),
         _init("ax", np.array([2], np.int64))])
    cases["pad_concat_clip_nchw_output"] = _model(
        [helper.make_node("Pad", ["x", "p", "v"], ["pd"]),
         helper.make_node("Conv", ["pd", "w"], ["c"]),
         helper.make_node("Clip", ["c", "lo", "hi"], ["cl"]),
         helper.make_node("Concat", ["cl", "cl"], ["y"], axis=1)],
        [x], [_f("y", None)],
        [_init("p", np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64)), _init("v", np.array(0.0, np.float32)),
         _init("w", _w(2, 4, 3, 3)), _init("lo", np.array(-0.5, np.float32)),
         _init("hi", np.array(1.0, np.float32))])
    cases["batchnorm_after_conv_shared"] = _model(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("BatchNormalization", ["c", "g", "bb", "mu", "var"], ["n"]),
         helper.make_node("Add", ["n", "c"], ["y"])],
        [x], [_f("y", None)],
        [_init("w", _w(5, 4, 1, 1)), _init("g", _w(5) + 2), _init("bb", _w(5)), _init("mu", _w(5)),
         _init("var", np.abs(_w(5)) + 0.5)])
    cases["relu_pad_maxpool"] = _model(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Pad", ["r", "p"], ["pd"]),
         helper.make_node("MaxPool", ["pd"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
        [x], [_f("y", None)], [_init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    cases["pad_maxpool_signed"] = _model(
        [helper.make_node("Pad", ["x", "p"], ["pd"]),
         helper.make_node("MaxPool", ["pd"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
        [x], [_f("y", None)], [_init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    cases["reduce_mean_keepdims0_opset18"] = _model(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)],
        [x], [_f("y", None)], [_init("axes", np.array([2, 3], np.int64))], opset=18)
    cases["clip_attrs_opset10_flatten_2x2"] = _model(
        [helper.make_node("Clip", ["x"], ["c"], min=0.0, max=0.7),
         helper.make_node("MaxPool", ["c"], ["m"], kernel_shape=[4, 4], strides=[4, 4]),
         helper.make_node("Flatten", ["m"], ["y"])], [x], [_f("y", None)], opset=10)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_op_against_onnxruntime(case, tmp_path):
    path = tmp_path / f"{case}.onnx"
    onnx.save(CASES[case], str(path))
    x = np.random.default_rng(7).standard_normal((1, 4, 9, 7)).astype(np.float32)
    expected = ort_run(path, x)
    graph = onnx_frontend.load(path)
    canonical = canonicalize(graph)
    assert {n.op for n in canonical.nodes} <= set(CANONICAL_OPS)
    got = run_graph(canonical, x)
    assert got.shape == expected.shape
    assert rel_err(got, expected) < REL_TOL


def test_canonical_folds_and_fusions():
    def ops(case):
        return [n.op for n in canonicalize(_load_case(case)).nodes]

    assert ops("maxpool_ceil_then_relu") == ["max_pool"]
    assert ops("relu_pad_maxpool") == ["clamp", "max_pool"]  # zero pad cannot beat values >= 0
    assert ops("pad_maxpool_signed") == ["pad", "max_pool"]  # it could beat negative values
    assert ops("pad_concat_clip_nchw_output") == ["conv2d", "concat"]  # pad and clip folded in
    assert ops("avgpool_count_include_pad") == ["pad", "avg_pool"]  # not foldable: counts padding
    assert ops("batchnorm_after_conv_shared").count("conv2d") == 2  # cloned for the shared output
    assert ops("matmul_add_bias_squeeze") == ["reshape", "fully_connected"]  # transpose folded into weights


def _load_case(case):
    data = CASES[case].SerializeToString()
    return onnx_frontend.load_bytes(data, source=case, name=case)


def test_channels_last_model_input(tmp_path):
    """A model that transposes its NHWC input itself (as tf2onnx writes them)
    keeps that input as it is and declares source_layout NHWC."""
    model = _model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
         helper.make_node("Conv", ["t", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])],
        [_f("x", [1, 9, 7, 4])], [_f("y", None)], [_init("w", _w(5, 4, 3, 3))])
    path = tmp_path / "nhwc.onnx"
    onnx.save(model, str(path))
    canonical = canonicalize(onnx_frontend.load(path))
    assert canonical.source_layout == "NHWC"
    assert [n.op for n in canonical.nodes] == ["conv2d"]
    x = np.random.default_rng(3).standard_normal((1, 9, 7, 4)).astype(np.float32)
    got = run_float(canonical, {"x": x})[canonical.outputs[0]]
    assert rel_err(got, ort_run(path, x)) < REL_TOL


def test_batch_norm_without_layer_becomes_mul_add():
    """A BatchNormalization with no layer before it to fold into: x * scale + shift per channel (as
    TFLite's converter writes it); tests/test_onnx_models.py compares such models with onnxruntime."""
    model = _model([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], name="bn0")],
                   [_f("x", [1, 3, 4, 4])], [_f("y", None)],
                   [_init(n, np.ones(3, np.float32)) for n in "gbmv"])
    graph = canonicalize(onnx_frontend.load_bytes(model.SerializeToString(), source="bn.onnx"))
    assert [(n.name, n.op) for n in graph.nodes] == [("bn0_mul", "mul"), ("bn0_add", "add")]


# ---- bad input ---------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(McuforgeError, match="nope.onnx"):
        onnx_frontend.load(tmp_path / "nope.onnx")


@pytest.mark.parametrize("content", [b"", b"this is not a model at all \x00\xff\x13" * 50,
                                     bytes(range(256)) * 8])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    with pytest.raises(McuforgeError, match="not a valid ONNX model") as err:
        onnx_frontend.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.97])
def test_truncated_file(tmp_path, fraction, zoo_models):
    module, example = zoo_models["tiny_1x1"]
    full = export_onnx(module, example, tmp_path / "full.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(McuforgeError, match="not a valid ONNX model") as err:
        onnx_frontend.load(path)
    assert str(path) in str(err.value)


def test_unsupported_ops_listed_together(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu_ok"),
        helper.make_node("Sin", ["r"], ["s"], name="my_sin"),
        helper.make_node("LSTM", ["seq", "W", "R"], ["h"], name="my_lstm", hidden_size=2),
        helper.make_node("Conv", ["s", "cw"], ["y"], name="grouped", group=2),
    ]
    model = _model(nodes, [_f("x", [1, 4, 5, 5]), _f("seq", [1, 1, 2])], [_f("y", None), _f("h", None)],
                   [_init("W", _w(1, 8, 2)), _init("R", _w(1, 8, 2)), _init("cw", _w(4, 2, 3, 3))])
    path = tmp_path / "bad_ops.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError) as err:
        onnx_frontend.load(path)
    message = str(err.value)
    assert str(path) in message and "my_sin (Sin)" in message and "my_lstm (LSTM)" in message
    assert "grouped (Conv): grouped convolution" in message  # found although it follows Sin
    assert "relu_ok" not in message and "\n" not in message


def test_grouped_conv_is_named(tmp_path):
    model = _model([helper.make_node("Conv", ["x", "cw"], ["y"], name="grouped", group=2)],
                   [_f("x", [1, 4, 5, 5])], [_f("y", None)], [_init("cw", _w(4, 2, 3, 3))])
    with pytest.raises(UnsupportedModelError, match=r"grouped \(Conv\): grouped convolution"):
        onnx_frontend.load_bytes(model.SerializeToString(), source="g.onnx")


@pytest.mark.parametrize("dims,needle", [(["batch", 3, 8, 8], "dynamic shape"), ([1, 3, None, 8], "dynamic"),
                                         ([4, 3, 8, 8], "batch size 4")])
def test_dynamic_or_batched_input(tmp_path, dims, needle):
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)
    model = _model([helper.make_node("Relu", ["images"], ["y"])], [x], [_f("y", None)])
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    with pytest.raises(McuforgeError, match=needle) as err:
        onnx_frontend.load(path)
    assert "images" in str(err.value) and str(path) in str(err.value)
    if needle == "dynamic shape":
        assert "(batch, 3, 8, 8)" in str(err.value)
        # pinning the shape makes it loadable
        graph = onnx_frontend.load(path, input_shapes={"images": (1, 3, 8, 8)})
        assert graph.tensors["images"].shape == (1, 8, 8, 3)


def test_torch_bad_example_input(zoo_models):
    module, example = zoo_models["mbv1"]
    with pytest.raises(McuforgeError, match="batch"):
        from_torch(module, example.repeat(2, 1, 1, 1))
