"""Write int8 .tflite files from plain descriptions (tests, zoo, benchmarks).

``build_model`` packs tensors and operators with the flatbuffer object API of
the schema the ``tflite_micro`` package ships; ``Net`` chains int8 operators
with seeded random weights and plausible scales (output scales from the
weight scale and fan-in, so that values neither vanish nor saturate), the way
a full-integer converter lays them out. Needs ``tflite-micro`` and
``flatbuffers`` (the ``test`` extra).
"""
from __future__ import annotations

import math

import numpy as np


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


TYPES = {"int8": 9, "int32": 2, "uint8": 3, "float32": 0, "int16": 7, "int64": 4}


def build_model(tensors: list[dict], ops: list[tuple], inputs: list[int], outputs: list[int]) -> bytes:
    """A .tflite flatbuffer from plain descriptions.

    tensors: dict(shape, dtype="int8", scale=None, zp=0, data=None, qdim=0);
    ops: (BUILTIN_NAME or ("CUSTOM", code), options class name or None, options dict, inputs, outputs).
    """
    S = _schema()
    model = S.ModelT()
    model.version = 3
    model.buffers = [S.BufferT()]
    model.operatorCodes = []
    codes: dict = {}
    graph = S.SubGraphT()
    graph.tensors = []
    for i, t in enumerate(tensors):
        tensor = S.TensorT()
        tensor.shape, tensor.name = [int(v) for v in t["shape"]], t.get("name", f"t{i}")
        dtype = t.get("dtype", "int8")
        tensor.type = TYPES[dtype]
        tensor.buffer = 0
        if t.get("data") is not None:
            buf = S.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(t["data"], dtype=dtype).tobytes(), np.uint8)
            model.buffers.append(buf)
            tensor.buffer = len(model.buffers) - 1
        if t.get("scale") is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(t["scale"])]
            q.zeroPoint = [int(z) for z in np.broadcast_to(np.atleast_1d(t.get("zp", 0)), (len(q.scale),))]
            q.quantizedDimension = int(t.get("qdim", 0))
            tensor.quantization = q
        graph.tensors.append(tensor)
    graph.operators = []
    for name, opt_name, opts, ins, outs in ops:
        key = name if isinstance(name, str) else tuple(name)
        if key not in codes:
            code = S.OperatorCodeT()
            if isinstance(name, str):
                code.builtinCode = getattr(S.BuiltinOperator, name)
            else:
                code.builtinCode = S.BuiltinOperator.CUSTOM
                code.customCode = name[1]
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = 1
            codes[key] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        op = S.OperatorT()
        op.opcodeIndex = codes[key]
        op.inputs, op.outputs = list(ins), list(outs)
        if opt_name is not None:
            opt = getattr(S, opt_name + "T")()
            for k, v in opts.items():
                setattr(opt, k, v)
            op.builtinOptionsType = getattr(S.BuiltinOptions, opt_name)
            op.builtinOptions = opt
        graph.operators.append(op)
    graph.inputs, graph.outputs = list(inputs), list(outputs)
    model.subgraphs = [graph]
    import flatbuffers

    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def same_pad(size: int, k: int, stride: int, dilation: int = 1) -> int:
    """Output size of TFLite SAME padding."""
    return (size + stride - 1) // stride


def valid_out(size: int, k: int, stride: int, dilation: int = 1) -> int:
    return (size - ((k - 1) * dilation + 1) + stride) // stride


class Net:
    """Builds a chain of int8 ops with random weights and plausible scales."""

    def __init__(self, seed: int, in_shape: tuple[int, ...], in_scale: float = 0.05, in_zp: int = 3):
        self.rng = np.random.default_rng(seed)
        self.tensors: list[dict] = [dict(shape=in_shape, scale=np.float32(in_scale), zp=in_zp, name="input")]
        self.ops: list[tuple] = []

    def act(self, shape, scale, zp=None, name=None) -> int:
        zp = int(self.rng.integers(-20, 20)) if zp is None else zp
        self.tensors.append(dict(shape=shape, scale=np.float32(scale), zp=zp, name=name or f"a{len(self.tensors)}"))
        return len(self.tensors) - 1

    def const(self, data, dtype="int8", scale=None, qdim=0, zp=0) -> int:
        self.tensors.append(dict(shape=np.shape(data), dtype=dtype, data=np.asarray(data), scale=scale, zp=zp,
                                 qdim=qdim, name=f"c{len(self.tensors)}"))
        return len(self.tensors) - 1

    def shape(self, k: int) -> tuple[int, ...]:
        return tuple(self.tensors[k]["shape"])

    def scale(self, k: int) -> float:
        return float(self.tensors[k]["scale"])

    def weights(self, shape, channels: int, per_channel: bool, qdim: int):
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        s = np.float32(np.exp2(self.rng.uniform(-8, -6, channels if per_channel else 1)))
        return w, s

    def _out_scale(self, k: int, fan_in: int, w_scale) -> float:
        return float(self.scale(k) * float(np.max(w_scale)) * 128 * math.sqrt(fan_in) / 24)

    def conv(self, x, out_c, k, stride=1, same=True, act=0, depthwise=False, mult=1, dilation=1, bias=True,
             per_channel=True, like=None):
        _, h, w, c = self.shape(x)
        size = same_pad if same else valid_out
        oh, ow = size(h, k[0], stride, dilation), size(w, k[1], stride, dilation)
        if depthwise:
            out_c = c * mult
            wq, ws = self.weights((1, k[0], k[1], out_c), out_c, per_channel, 3)
            fan = k[0] * k[1]
        else:
            wq, ws = self.weights((out_c, k[0], k[1], c), out_c, per_channel, 0)
            fan = k[0] * k[1] * c
        wk = self.const(wq, scale=ws, qdim=3 if depthwise else 0)
        ins = [x, wk]
        if bias:
            ins.append(self.const(self.rng.integers(-2000, 2000, out_c).astype(np.int32), "int32",
                                  scale=np.float32(self.scale(x)) * np.broadcast_to(ws, (out_c,))))
        if like is None:
            y = self.act((1, oh, ow, out_c), self._out_scale(x, fan, ws))
        else:  # the quantization of tensor `like`
            y = self.act((1, oh, ow, out_c), self.tensors[like]["scale"], self.tensors[like]["zp"])
        opts = dict(padding=0 if same else 1, strideW=stride, strideH=stride, fusedActivationFunction=act,
                    dilationWFactor=dilation, dilationHFactor=dilation)
        if depthwise:
            opts["depthMultiplier"] = mult
        self.ops.append(("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                         "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions", opts, ins, [y]))
        return y

    def fc(self, x, n, bias=True, act=0, keep_num_dims=False, per_channel=False):
        shape = self.shape(x)
        k = shape[-1]
        wq, ws = self.weights((n, k), n, per_channel, 0)
        ins = [x, self.const(wq, scale=ws)]
        ins.append(self.const(self.rng.integers(-2000, 2000, n).astype(np.int32), "int32",
                              scale=np.float32(self.scale(x)) * ws) if bias else -1)
        rows = int(np.prod(shape)) // k
        out_shape = tuple(shape[:-1]) + (n,) if keep_num_dims else (rows, n)
        y = self.act(out_shape, 4 * self._out_scale(x, k, ws))
        self.ops.append(("FULLY_CONNECTED", "FullyConnectedOptions",
                         dict(fusedActivationFunction=act, keepNumDims=keep_num_dims), ins, [y]))
        return y

    def same_quant(self, x, shape):
        t = self.tensors[x]
        return self.act(shape, t["scale"], t["zp"])

    def pool(self, x, kind, k, stride, same=True, act=0):
        _, h, w, c = self.shape(x)
        size = same_pad if same else valid_out
        y = self.same_quant(x, (1, size(h, k[0], stride), size(w, k[1], stride), c))
        self.ops.append((kind, "Pool2DOptions", dict(padding=0 if same else 1, strideW=stride, strideH=stride,
                                                     filterWidth=k[1], filterHeight=k[0],
                                                     fusedActivationFunction=act), [x], [y]))
        return y

    def add(self, a, b, act=0):
        y = self.act(self.shape(a), max(self.scale(a), self.scale(b)) * 1.5)
        self.ops.append(("ADD", "AddOptions", dict(fusedActivationFunction=act), [a, b], [y]))
        return y

    def pad(self, x, pads):
        shape = tuple(d + b + e for d, (b, e) in zip(self.shape(x), pads))
        y = self.same_quant(x, shape)
        self.ops.append(("PAD", None, {}, [x, self.const(np.array(pads, np.int32), "int32")], [y]))
        return y

    def concat(self, xs, axis):
        shape = list(self.shape(xs[0]))
        shape[axis] = sum(self.shape(x)[axis] for x in xs)
        y = self.same_quant(xs[0], tuple(shape))
        self.ops.append(("CONCATENATION", "ConcatenationOptions", dict(axis=axis), list(xs), [y]))
        return y

    def mean(self, x, keep_dims):
        c = self.shape(x)[3]
        y = self.act((1, 1, 1, c) if keep_dims else (1, c), self.scale(x) * 0.8)
        self.ops.append(("MEAN", "ReducerOptions", dict(keepDims=keep_dims),
                         [x, self.const(np.array([1, 2], np.int32), "int32")], [y]))
        return y

    def reshape(self, x, shape):
        y = self.same_quant(x, shape)
        self.ops.append(("RESHAPE", None, {}, [x, self.const(np.array(shape, np.int32), "int32")], [y]))
        return y

    def op(self, name, options, opts, ins, shape):
        """An op whose output keeps the quantization of its first input."""
        y = self.same_quant(ins[0], shape)
        self.ops.append((name, options, opts, ins, [y]))
        return y

    def softmax(self, x, beta=1.0):
        y = self.act(self.shape(x), 1 / 256, -128)
        self.ops.append(("SOFTMAX", "SoftmaxOptions", dict(beta=beta), [x], [y]))
        return y

    def build(self, out: int) -> bytes:
        return build_model(self.tensors, self.ops, [0], [out])

    def unary(self, x, op, scale=None, zp=None, options=None, opts=None):
        """HARD_SWISH, LOGISTIC, ...: an op of one input; output scale `scale` (default: the input's)."""
        y = self.act(self.shape(x), self.scale(x) if scale is None else scale, zp)
        self.ops.append((op, options, opts or {}, [x], [y]))
        return y

    def binary(self, op, a, b, scale, zp=None, act=0):
        """ADD / SUB / MUL of two operands (either may be a constant), output scale `scale`."""
        shape = tuple(np.broadcast_shapes(self.shape(a), self.shape(b)))
        y = self.act(shape, scale, zp)
        self.ops.append((op, op.capitalize() + "Options", dict(fusedActivationFunction=act), [a, b], [y]))
        return y

    def scalar(self, value: float) -> int:
        """A constant single int8 value as TFLite's converter stores one (symmetric, scale |v| / 127)."""
        return self.const(np.array([127 if value > 0 else -127], np.int8), scale=np.float32(abs(value) / 127))


class StableNet(Net):
    """A Net whose weight scales keep each layer's output scale near its
    input's (as a calibrated, trained network has), so that deep networks
    neither vanish nor saturate."""

    def weights(self, shape, channels: int, per_channel: bool, qdim: int):
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        fan = int(np.prod(shape[1:3])) * (1 if qdim == 3 else int(shape[3]))
        gain = 24.0 / (128.0 * math.sqrt(fan))
        s = np.float32(gain * np.exp2(self.rng.uniform(-0.5, 0.5, channels if per_channel else 1)))
        return w, s

    def mean(self, x, keep_dims):
        """A spatial mean of a map of random-looking values is about sqrt(H*W) times narrower."""
        _, h, w, c = self.shape(x)
        y = self.act((1, 1, 1, c) if keep_dims else (1, c), self.scale(x) * 2 / math.sqrt(h * w))
        self.ops.append(("MEAN", "ReducerOptions", dict(keepDims=keep_dims),
                         [x, self.const(np.array([1, 2], np.int32), "int32")], [y]))
        return y


def build_float_io(net: Net, out: int) -> bytes:
    """The net with the converter's default float32 ends: a float input read by
    QUANTIZE (to the net's int8 input) and a DEQUANTIZE of `out` to a float
    output, as ``inference_input_type`` / ``inference_output_type`` left at
    float32 give."""
    tensors = list(net.tensors)
    tensors.append(dict(shape=tensors[0]["shape"], dtype="float32", name="input_float"))
    fin = len(tensors) - 1
    tensors.append(dict(shape=tensors[out]["shape"], dtype="float32", name="output_float"))
    fout = len(tensors) - 1
    ops = [("QUANTIZE", None, {}, [fin], [0])] + list(net.ops) + [("DEQUANTIZE", None, {}, [out], [fout])]
    return build_model(tensors, ops, [fin], [fout])
