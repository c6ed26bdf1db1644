"""Float Graph -> int8 Graph with TFLite's quantization scheme.

* activations: int8, per-tensor, asymmetric, from calibration min/max
  (range always includes 0, as TFLite's converter does);
* weights: int8, symmetric, per output channel, range [-127, 127];
* bias: int32 with scale = input_scale * weight_scale[c].

A graph whose frontend already brings scales (ONNX QDQ, TFLite) keeps them
exactly; only tensors without quantization (pure data movement between two
quantized tensors) inherit their input's parameters.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .ir import Graph, McuforgeError, Quant, Tensor

# Ops whose output shares its input's quantization (TFLite requires it).
SAME_QUANT_OPS = {"reshape", "transpose", "pad", "max_pool", "avg_pool", "strided_slice", "resize_nearest",
                  "reduce_max", "tile"}
# Ops with an operand that is a weight tensor: op -> (weight index, channel axis)
WEIGHT_AXIS = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": 0, "transpose_conv": 0}

INT8_MIN, INT8_MAX = -128, 127


class CalibrationWarning(UserWarning):
    pass


def round_half_away(x: np.ndarray) -> np.ndarray:
    """TFLite's rounding (std::round): halves away from zero."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_quant(lo: float, hi: float) -> Quant:
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(round_half_away(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return Quant(scale=np.float32(scale).astype(np.float64), zero_point=zero_point)


def activation_quant16(lo: float, hi: float) -> Quant:
    """16x8 activations: symmetric, zero point 0, scale max|x| / 32767 (TFLite's converter)."""
    m = max(abs(float(lo)), abs(float(hi)))
    if m < 1e-8:
        m = 1e-8
    return Quant(scale=np.float32(m / 32767.0).astype(np.float64), zero_point=0)


def quantize_values(x: np.ndarray, quant: Quant, dtype: str = "int8") -> np.ndarray:
    """float -> int8 (or int16) with the tensor's per-tensor parameters."""
    q = round_half_away(np.asarray(x, dtype=np.float64) / quant.scale[0]) + quant.zero_point[0]
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_values(q: np.ndarray, quant: Quant) -> np.ndarray:
    """int8 -> float32 as TFLite's DEQUANTIZE: float32(scale * (q - zero point)), the product in double."""
    return (float(quant.scale[0]) * (np.asarray(q, dtype=np.float64) - int(quant.zero_point[0]))).astype(np.float32)


def clamp_range(node_attrs: dict, quant: Quant) -> tuple[int, int]:
    """The int8 clamp of a fused activation (TFLite CalculateActivationRangeQuantized)."""
    scale, zp = float(quant.scale[0]), int(quant.zero_point[0])
    lo, hi = INT8_MIN, INT8_MAX
    a_min = node_attrs.get("act_min", -np.inf)
    a_max = node_attrs.get("act_max", np.inf)
    if np.isfinite(a_min):
        lo = max(lo, zp + int(round_half_away(a_min / scale)))
    if np.isfinite(a_max):
        hi = min(hi, zp + int(round_half_away(a_max / scale)))
    return lo, hi


# ---- calibration data -----------------------------------------------------
def load_calibration(path: Path | None, graph: Graph, count_hint: int = 64) -> dict[str, np.ndarray]:
    """Calibration samples per graph input, in the IR layout (N, ...)."""
    if len(graph.inputs) != 1:
        return _load_calibration_inputs(path, graph)
    in_name = graph.inputs[0]
    in_shape = graph.tensors[in_name].shape
    if path is None:
        warnings.warn(
            "no calibration data given (--calibration): quantization ranges come from random "
            "inputs and int8 accuracy will be poor; pass real samples as .npy/.npz",
            CalibrationWarning, stacklevel=2)
        rng = np.random.default_rng(0)
        return {in_name: rng.standard_normal((8,) + in_shape[1:]).astype(np.float32)}
    path = Path(path)
    if not path.is_file():
        raise McuforgeError(f"{path}: calibration file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise McuforgeError(f"{path}: not a readable .npy/.npz file ({err.__class__.__name__})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = list(loaded.keys())
        key = in_name if in_name in keys else (keys[0] if len(keys) == 1 else None)
        for k in ("x", "calibration", "input"):
            if key is None and k in keys:
                key = k
        if key is None:
            raise McuforgeError(f"{path}: .npz has arrays {keys}; name one '{in_name}' or 'x'")
        data = loaded[key]
    else:
        data = loaded
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise McuforgeError(f"{path}: calibration data must be numeric, got {data.dtype}")
    data = data.astype(np.float32)
    src_shape = source_shape(graph, in_shape)
    if data.shape == src_shape[1:]:
        data = data[None]
    if data.ndim != len(src_shape) or tuple(data.shape[1:]) != tuple(src_shape[1:]):
        raise McuforgeError(
            f"{path}: calibration data has shape {tuple(data.shape)}, expected (N, {', '.join(map(str, src_shape[1:]))}) "
            f"for input '{in_name}' ({graph.source_layout})")
    if len(data) == 0:
        raise McuforgeError(f"{path}: calibration data is empty")
    return {in_name: to_ir_layout(graph, data)}


def _load_calibration_inputs(path: Path | None, graph: Graph) -> dict[str, np.ndarray]:
    """A model with several inputs: an .npz with one array (N, ...) per input name, the same N."""
    names = list(graph.inputs)
    if path is None:
        warnings.warn("no calibration data given (--calibration): quantization ranges come from random "
                      "inputs and int8 accuracy will be poor; pass real samples as .npz", CalibrationWarning,
                      stacklevel=3)
        rng = np.random.default_rng(0)
        return {n: rng.standard_normal((8,) + graph.tensors[n].shape[1:]).astype(np.float32) for n in names}
    path = Path(path)
    if not path.is_file():
        raise McuforgeError(f"{path}: calibration file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = {k: loaded[k] for k in loaded.files} if isinstance(loaded, np.lib.npyio.NpzFile) else None
    except Exception as err:
        raise McuforgeError(f"{path}: not a readable .npz file ({err.__class__.__name__})") from None
    if arrays is None or any(n not in arrays for n in names):
        raise McuforgeError(f"{path}: the model has {len(names)} inputs: give an .npz with one array per input, "
                            f"named {', '.join(names)}")
    out = {}
    for n in names:
        data = np.asarray(arrays[n])
        src_shape = source_shape(graph, graph.tensors[n].shape)
        if (data.dtype.kind not in "fiu" or data.ndim != len(src_shape) or len(data) == 0
                or tuple(data.shape[1:]) != tuple(src_shape[1:])):
            raise McuforgeError(f"{path}: calibration array '{n}' has shape {tuple(data.shape)} and type {data.dtype}, "
                                f"expected numbers (N, {', '.join(map(str, src_shape[1:]))}) ({graph.source_layout})")
        out[n] = to_ir_layout(graph, data.astype(np.float32))
    if len({len(v) for v in out.values()}) != 1:
        raise McuforgeError(f"{path}: the inputs' calibration arrays hold different numbers of samples")
    return out


def source_shape(graph: Graph, ir_shape: tuple[int, ...]) -> tuple[int, ...]:
    if graph.source_layout == "NCHW" and len(ir_shape) == 4:
        n, h, w, c = ir_shape
        return (n, c, h, w)
    return tuple(ir_shape)


def to_ir_layout(graph: Graph, data: np.ndarray) -> np.ndarray:
    """(N, ...) in the source layout -> (N, ...) channels last."""
    if graph.source_layout == "NCHW" and data.ndim == 4:
        return np.ascontiguousarray(data.transpose(0, 2, 3, 1))
    return data


def to_source_layout(graph: Graph, data: np.ndarray) -> np.ndarray:
    if graph.source_layout == "NCHW" and data.ndim == 4:
        return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
    return data


# ---- the pass ---------------------------------------------------------------
def calibrate(graph: Graph, samples: dict[str, np.ndarray], progress=None) -> dict[str, tuple[float, float]]:
    from .float_exec import run_float

    ranges: dict[str, tuple[float, float]] = {}
    count = len(samples[graph.inputs[0]])
    for i in range(count):
        with np.errstate(all="ignore"):  # an overflowing model is reported below, by tensor
            values = run_float(graph, {name: samples[name][i:i + 1] for name in graph.inputs})
        for name, v in values.items():
            if graph.tensors[name].is_const:
                continue
            lo, hi = float(np.min(v)), float(np.max(v))
            if name in ranges:
                lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
            ranges[name] = (lo, hi)
        if progress:
            progress(i + 1, count)
    return ranges


def quantize(graph: Graph, samples: dict[str, np.ndarray] | None = None, progress=None,
             activations: str = "int8") -> Graph:
    """Return an int8 copy of `graph`.

    `samples` (from load_calibration) is needed unless every activation
    already carries a Quant (pre-quantized models). ``activations="int16"``
    quantizes a float model with TFLite's 16x8 scheme instead: int16
    activations, symmetric (zero point 0, scale max|x| / 32767 from
    calibration; LOGISTIC, TANH and SOFTMAX write 2^-15), int8 per-channel
    weights as for int8, int64 biases.
    """
    wide = activations == "int16"
    g = graph.copy()
    acts = g.activations()
    prequantized = all(t.quant is not None for t in acts if t.name in g.inputs)
    ranges: dict[str, tuple[float, float]] = {}
    if not prequantized:
        if samples is None:
            raise McuforgeError("float model needs calibration samples")
        ranges = calibrate(g, samples, progress)

    _split_softmax_requant(g)
    acts = g.activations()
    producers = g.producers()
    # activations, in execution order so SAME_QUANT_OPS can inherit
    for t in acts:
        node = producers.get(t.name)
        if wide and t.quant is None and node is not None and node.op in ("softmax", "logistic", "tanh"):
            t.quant = Quant(scale=1.0 / 32768.0, zero_point=0)  # TFLM's 16-bit kernels write 2^-15, 0
        elif node is not None and node.op == "softmax" and t.dtype != "int16" and not wide:  # 16x8 softmax: its own 2^-15
            t.quant = SOFTMAX_QUANT
        elif node is not None and node.op in FIXED_OUTPUT_QUANT and t.quant is None and not wide:
            t.quant = Quant(*FIXED_OUTPUT_QUANT[node.op])
        elif node is not None and node.op in SAME_QUANT_OPS and g.tensors[node.inputs[0]].quant is not None \
                and (t.quant is None or not prequantized or node.op != "avg_pool"):
            # data movement keeps its input's parameters; a given avg_pool scale is
            # kept (its kernel requantizes)
            t.quant = g.tensors[node.inputs[0]].quant
        elif t.quant is None:
            if t.name not in ranges:
                raise McuforgeError(
                    f"{graph.source or graph.name}: tensor '{t.name}' has no quantization parameters; "
                    "quantize the model fully (every activation) or give a float model with calibration data")
            if not np.all(np.isfinite(ranges[t.name])):
                raise McuforgeError(
                    f"{graph.source or graph.name}: calibration gives non-finite values ({ranges[t.name]}) for "
                    f"tensor '{t.name}' (output of '{producers[t.name].name if t.name in producers else 'input'}'): "
                    "the float model overflows on these inputs; check its weights and the calibration data")
            t.quant = activation_quant16(*ranges[t.name]) if wide else activation_quant(*ranges[t.name])
        if t.quant.axis is not None or len(t.quant.scale) != 1:
            raise McuforgeError(f"{graph.source or graph.name}: activation '{t.name}' is quantized per channel; "
                                "activations must be quantized per tensor")
        if wide:
            t.dtype = "int16"
        elif t.dtype != "int16":  # int16 activations come quantized (16x8 TFLite models) and stay int16
            t.dtype = "int8"

    _quantize_scalar_operands(g)
    # weights and biases
    for node in g.nodes:
        if node.op not in WEIGHT_AXIS:
            continue
        axis = WEIGHT_AXIS[node.op]
        w = g.tensors[node.inputs[1]]
        if w.data is None:
            raise McuforgeError(f"{graph.source or graph.name}: node '{node.name}' ({node.op}) has a non-constant weight; "
                                "only constant weights are supported")
        if w.dtype != "int8":
            if not np.all(np.isfinite(w.data)):
                raise McuforgeError(f"{graph.source or graph.name}: node '{node.name}' ({node.op}): weight "
                                    f"'{w.name}' has non-finite values (after folding batch norm, if any)")
            _quantize_weight(w, axis)
        elif w.quant is None:
            raise McuforgeError(f"node '{node.name}': int8 weight '{w.name}' has no scale")
        if len(node.inputs) > 2 and node.inputs[2]:
            b = g.tensors[node.inputs[2]]
            in_scale = g.tensors[node.inputs[0]].quant.scale[0]
            bias_scale = in_scale * w.quant.scale
            if b.dtype not in ("int32", "int64"):  # int64: a 16x8 model's bias, kept as it is
                if not np.all(np.isfinite(b.data)):
                    raise McuforgeError(f"{graph.source or graph.name}: node '{node.name}' ({node.op}): bias "
                                        f"'{b.name}' has non-finite values (after folding batch norm, if any)")
                q = round_half_away(b.data.astype(np.float64) / bias_scale)
                if wide:  # 16x8: int64 bias (TFLite's converter)
                    b.data = np.clip(q, -2**63, 2**63 - 1024).astype(np.int64)
                    b.dtype = "int64"
                else:
                    b.data = np.clip(q, -2**31, 2**31 - 1).astype(np.int32)
                    b.dtype = "int32"
            b.quant = Quant(scale=bias_scale, zero_point=np.zeros_like(bias_scale, dtype=np.int64), axis=0)
    return g


SOFTMAX_QUANT = Quant(scale=1.0 / 256.0, zero_point=-128)
# TFLite's int8 LOGISTIC and TANH write these output parameters.
FIXED_OUTPUT_QUANT = {"logistic": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}
# Elementwise ops that take a constant operand (x * c, x - c, max(x, c)): a single value, or for
# add / sub / mul / prelu a per-channel vector (a BatchNormalization left alone, PRELU's alpha).
SCALAR_OPERAND_OPS = ("add", "sub", "mul", "maximum", "minimum", "prelu")
VECTOR_OPERAND_OPS = ("add", "sub", "mul", "prelu")


def _quantize_scalar_operands(g: Graph) -> None:
    """A float scalar constant of an elementwise op becomes one int8 value
    (symmetric, scale |c| / 127, as TFLite's converter stores it)."""
    for node in g.nodes:
        if node.op not in SCALAR_OPERAND_OPS:
            continue
        for name in node.inputs:
            t = g.tensors[name]
            if not t.is_const or t.dtype == "int8":
                continue
            if t.size != 1 and node.op not in VECTOR_OPERAND_OPS:
                raise McuforgeError(f"{g.source or g.name}: node '{node.name}' ({node.op}) has a constant operand of "
                                    f"shape {t.shape}; only a single value is supported")
            values = np.asarray(t.data, np.float64).reshape(-1)
            if not np.all(np.isfinite(values)):
                raise McuforgeError(f"{g.source or g.name}: node '{node.name}' ({node.op}): constant operand "
                                    f"'{t.name}' has non-finite values")
            c = float(np.max(np.abs(values)))
            scale = float(np.float32(c / 127.0)) if c != 0 else 1.0
            t.data = np.clip(round_half_away(values / scale), -127, 127).astype(np.int8).reshape(t.shape)
            t.dtype = "int8"
            t.quant = Quant(scale=scale, zero_point=0)


def _split_softmax_requant(g: Graph) -> None:
    """TFLite's int8 softmax writes scale 1/256, zero point -128. Where the
    model file gives the softmax output other parameters (onnxruntime uses
    1/255), keep them exactly: softmax into a 1/256 tensor, then requantize."""
    from .ir import Node, unique_name

    for node in list(g.nodes):
        out = g.tensors[node.outputs[0]]
        if node.op != "softmax" or out.quant is None or out.quant.same_as(SOFTMAX_QUANT) or out.dtype == "int16":
            continue
        mid = unique_name(g.tensors, out.name + "_softmax")
        g.tensors[mid] = Tensor(mid, out.shape, out.dtype, quant=SOFTMAX_QUANT)
        node.outputs[0] = mid
        requant = Node(unique_name([n.name for n in g.nodes], node.name + "_requantize"), "clamp", [mid], [out.name],
                       {"act_min": -np.inf, "act_max": np.inf})
        g.nodes.insert(g.nodes.index(node) + 1, requant)


def _quantize_weight(w: Tensor, axis: int) -> None:
    data = w.data.astype(np.float64)
    moved = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    absmax = np.max(np.abs(moved), axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0)
    scale = scale.astype(np.float32).astype(np.float64)  # as stored in a model file
    shape = [1] * data.ndim
    shape[axis] = -1
    q = round_half_away(data / scale.reshape(shape))
    w.data = np.clip(q, -127, 127).astype(np.int8)
    w.dtype = "int8"
    w.quant = Quant(scale=scale, zero_point=np.zeros(len(scale), dtype=np.int64), axis=axis)

