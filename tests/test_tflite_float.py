"""Float .tflite models (converted without quantization): the frontend's
float graph equals TFLM's float interpreter, and mcuforge's own
post-training quantization from calibration data (as for a float ONNX
model) compiles them; the generated C equals the NumPy reference byte for
byte and the int8 result stays close to TFLM's float one. The models are
built here with mcuforge's TFLite writer."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge import reference
from mcuforge.tools import hostrun
from mcuforge.config import BuildConfig
from mcuforge.float_exec import run_float
from mcuforge.frontends.tflite import load_bytes
from mcuforge.pipeline import canonicalize, compile_model
from mcuforge.quantize import dequantize_values, quantize_values
from mcuforge.tflite_writer import build_model

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")


class FloatNet:
    """A chain of float32 operators with seeded random weights."""

    def __init__(self, seed: int, in_shape):
        self.rng = np.random.default_rng(seed)
        self.tensors = [dict(shape=in_shape, dtype="float32", name="input")]
        self.ops: list[tuple] = []

    def shape(self, k):
        return tuple(self.tensors[k]["shape"])

    def act(self, shape) -> int:
        self.tensors.append(dict(shape=shape, dtype="float32", name=f"a{len(self.tensors)}"))
        return len(self.tensors) - 1

    def const(self, data, dtype="float32") -> int:
        data = np.asarray(data, dtype)
        self.tensors.append(dict(shape=data.shape, dtype=dtype, data=data, name=f"c{len(self.tensors)}"))
        return len(self.tensors) - 1

    def conv(self, x, out_c, k, stride=1, act=0, depthwise=False):
        _, h, w, c = self.shape(x)
        oh, ow = -(-h // stride), -(-w // stride)
        if depthwise:
            out_c = c
            wk = self.const(self.rng.standard_normal((1, k, k, c)) / k)
        else:
            wk = self.const(self.rng.standard_normal((out_c, k, k, c)) / (k * np.sqrt(c)))
        b = self.const(self.rng.standard_normal(out_c) * 0.1)
        y = self.act((1, oh, ow, out_c))
        opts = dict(padding=0, strideW=stride, strideH=stride, fusedActivationFunction=act,
                    dilationWFactor=1, dilationHFactor=1)
        if depthwise:
            opts["depthMultiplier"] = 1
        self.ops.append(("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                         "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", opts, [x, wk, b], [y]))
        return y

    def op(self, name, options, opts, ins, shape):
        y = self.act(shape)
        self.ops.append((name, options, opts, ins, [y]))
        return y

    def fc(self, x, n):
        k = self.shape(x)[-1]
        w = self.const(self.rng.standard_normal((n, k)) / np.sqrt(k))
        return self.op("FULLY_CONNECTED", "FullyConnectedOptions", {}, [x, w, self.const(np.zeros(n))], (1, n))

    def build(self, out):
        return build_model(self.tensors, self.ops, [0], [out])


def _ints(n, values):
    return n.const(np.asarray(values, np.int32), "int32")


def _image_net() -> bytes:
    """conv / depthwise with fused activations, a standalone per-channel MUL and ADD, PRELU, residual ADD,
    MEAN, FULLY_CONNECTED, SOFTMAX."""
    n = FloatNet(31, (1, 10, 10, 3))
    x = n.conv(0, 8, 3, stride=2, act=1)
    d = n.conv(x, 0, 3, depthwise=True, act=3)
    d = n.op("MUL", "MulOptions", {}, [d, n.const(n.rng.uniform(0.5, 1.5, 8))], (1, 5, 5, 8))
    d = n.op("ADD", "AddOptions", {}, [d, n.const(n.rng.uniform(-0.3, 0.3, 8))], (1, 5, 5, 8))
    p = n.op("PRELU", None, {}, [d, n.const(n.rng.uniform(0.05, 0.3, (1, 1, 8)))], (1, 5, 5, 8))
    y = n.op("ADD", "AddOptions", {}, [x, p], (1, 5, 5, 8))
    m = n.op("MEAN", "ReducerOptions", dict(keepDims=False), [y, _ints(n, [1, 2])], (1, 8))
    return n.build(n.op("SOFTMAX", "SoftmaxOptions", dict(beta=1.0), [n.fc(m, 4)], (1, 4)))


def _signal_net() -> bytes:
    """A 1-D classifier: Conv1D (EXPAND_DIMS, CONV_2D, SQUEEZE), TRANSPOSE, REDUCE_MAX, GlobalAveragePooling1D."""
    n = FloatNet(32, (1, 32, 2))
    e = n.op("EXPAND_DIMS", None, {}, [0, _ints(n, [1])], (1, 1, 32, 2))
    c = n.conv(e, 6, 1, act=1)
    c = n.conv(c, 6, 3, act=1)
    s = n.op("SQUEEZE", "SqueezeOptions", dict(squeezeDims=[1]), [c], (1, 32, 6))
    t = n.op("TRANSPOSE", None, {}, [s, _ints(n, [0, 2, 1])], (1, 6, 32))
    r = n.op("REDUCE_MAX", "ReducerOptions", dict(keepDims=False), [t, _ints(n, [2])], (1, 6))
    g = n.op("MEAN", "ReducerOptions", dict(keepDims=False), [s, _ints(n, [1])], (1, 6))
    a = n.op("ADD", "AddOptions", {}, [r, g], (1, 6))
    return n.build(n.fc(a, 3))


MODELS = {"image": (_image_net, (1, 10, 10, 3)), "signal": (_signal_net, (1, 32, 2))}


def tflm_float(data: bytes, xs: np.ndarray) -> np.ndarray:
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    outs = []
    for x in xs:
        interpreter.set_input(np.ascontiguousarray(x[None], dtype=np.float32), 0)
        interpreter.invoke()
        outs.append(np.asarray(interpreter.get_output(0)).reshape(-1).copy())
    return np.stack(outs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float_graph_equals_tflm_float(name):
    make, shape = MODELS[name]
    data = make()
    graph = canonicalize(load_bytes(data, source=f"{name}.tflite"))
    xs = np.random.default_rng(1).standard_normal((6,) + shape[1:]).astype(np.float32)
    want = tflm_float(data, xs)
    got = np.stack([run_float(graph, x[None])[graph.outputs[0]].reshape(-1) for x in xs])
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float_model_quantized_from_calibration(name, tmp_path):
    make, shape = MODELS[name]
    data = make()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    rng = np.random.default_rng(2)
    calibration = rng.standard_normal((32,) + shape[1:]).astype(np.float32)
    np.save(tmp_path / "calib.npy", calibration)
    plan = compile_model(path, BuildConfig(name=name, calibration=str(tmp_path / "calib.npy")), tmp_path / "gen")
    xs = calibration[:8]  # inside the calibrated ranges: no saturation, only rounding
    q = quantize_values(xs, plan.graph.tensors[plan.input].quant)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, q)[0].reshape(len(xs), -1)
    ref = np.stack([reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1) for i, x in enumerate(q)])
    assert np.array_equal(got, ref)  # the C is the reference, byte for byte
    out_q = plan.graph.tensors[plan.outputs[0]].quant
    want = tflm_float(data, xs)
    err = np.abs(dequantize_values(got, out_q) - want).max()
    assert err <= 0.1 * np.abs(want).max(), f"{name}: int8 differs from TFLM float by {err}"


def test_float_model_with_two_inputs(tmp_path):
    """Calibration of a float model with two inputs: an .npz with one array per input name."""
    n = FloatNet(33, (1, 8, 8, 3))
    x = n.conv(0, 8, 3, stride=2, act=1)
    m = n.op("MEAN", "ReducerOptions", dict(keepDims=False), [x, _ints(n, [1, 2])], (1, 8))
    v = n.act((1, 8))
    n.tensors[v]["name"] = "side"
    y = n.fc(n.op("ADD", "AddOptions", {}, [m, v], (1, 8)), 3)
    data = build_model(n.tensors, n.ops, [0, v], [y])
    path = tmp_path / "two.tflite"
    path.write_bytes(data)
    names = load_bytes(data, source="two.tflite").inputs
    rng = np.random.default_rng(4)
    calibration = {names[0]: rng.standard_normal((32, 8, 8, 3)).astype(np.float32),
                   names[1]: rng.standard_normal((32, 8)).astype(np.float32)}
    np.savez(tmp_path / "calib.npz", **calibration)
    plan = compile_model(path, BuildConfig(name="two", calibration=str(tmp_path / "calib.npz")), tmp_path / "gen")
    q = [quantize_values(calibration[k][:6], plan.graph.tensors[k].quant) for k in names]
    record = np.concatenate([a.reshape(6, -1) for a in q], axis=1)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, record)[0].reshape(6, -1)
    ref = np.stack([reference.run(plan, r).outputs[plan.outputs[0]].reshape(-1) for r in record])
    assert np.array_equal(got, ref)
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    want = []
    for i in range(6):
        for k, name in enumerate(names):
            interpreter.set_input(np.ascontiguousarray(calibration[name][i:i + 1]), k)
        interpreter.invoke()
        want.append(np.asarray(interpreter.get_output(0)).reshape(-1).copy())
    want = np.stack(want)
    err = np.abs(dequantize_values(got, plan.graph.tensors[plan.outputs[0]].quant) - want).max()
    assert err <= 0.1 * np.abs(want).max(), err
    import mcuforge  # the Python API: a dict of calibration arrays, a list of inputs

    model = mcuforge.compile(str(path), calibration=calibration, out=tmp_path / "api", name="two")
    assert np.array_equal(model.run([calibration[k][:6] for k in names]).reshape(6, -1), got)
