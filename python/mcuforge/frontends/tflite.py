"""TFLite frontend: full-integer int8 ``.tflite`` file -> pre-quantized ``ir.Graph``.

The file is read with the ``tflite`` package (the flatbuffer schema of
TensorFlow Lite, generated code, maintained upstream); nothing here parses
flatbuffers by hand. What it does, in order:

1. checks the bytes: non-empty, the ``TFL3`` file identifier, every vector
   and buffer inside the file (a truncated or garbage file is one
   ``McuforgeError`` naming the file);
2. rejects models that are not full-integer int8, with what to do: float
   inputs, outputs or weights (a float or dynamic-range model), uint8 tensors
   (the old quantization scheme), int16 activations (16x8 models);
3. converts every operator of the main subgraph to canonical IR ops. The IR
   is channels-last like TFLite, so tensors keep their shapes; weights keep
   their layout ((O, KH, KW, I) conv, (1, KH, KW, C*M) depthwise, (N, K)
   fully connected), their int8 values and their scales; biases stay int32;
   every activation keeps its scale and zero point exactly (float32 in the
   file, the same value as float64 here);
4. collects every operator it cannot convert (custom ops, unsupported
   builtins, unsupported options) and raises ONE ``UnsupportedModelError``
   that names all of them with their operator index.

Numerics follow TFLM's reference kernels (see docs/operators.md, "Frontends and numerics"):

* SAME padding as TFLite computes it: ``out = ceil(in / stride)``,
  ``total = max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)``,
  ``before = total // 2``, ``after = total - before`` (so stride 2 on an even
  size pads 0 before and 1 after); VALID pads nothing;
* fused activations become ``act_min``/``act_max``; the clamp is what TFLite's
  CalculateActivationRangeQuantized gives (``zp + round(f / scale)`` with the
  division in float32), see :func:`_act_range`.

Node names are ``<BUILTIN>_<operator index>`` (``CONV_2D_0``), the operator
index being the one TFLite tools and ``mcuforge compare`` show; tensors keep
their TFLite names (made unique), see :func:`tensor_names`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import INF, Graph, McuforgeError, Node, Quant, Tensor, UnsupportedModelError, unique_name
from ..registry import Frontend
from ..untrusted import text
from . import c_identifier

FILE_IDENTIFIER = b"TFL3"

# TensorType values of the schema (tflite.TensorType), by name.
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
               7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
               13: "resource", 14: "variant", 15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16"}
_FLOAT_TYPES = {"float32", "float16", "float64", "bfloat16"}
_NUMPY_TYPES = {"int8": np.int8, "int32": np.int32, "uint8": np.uint8, "int16": np.int16, "int64": np.int64,
                "float32": np.float32, "float16": np.float16, "float64": np.float64}

# Builtin operators converted to IR ops.
SUPPORTED_OPS = ("ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
                 "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D", "MEAN",
                 "MINIMUM", "MUL", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX", "RELU", "RELU6", "RESHAPE",
                 "RESIZE_NEAREST_NEIGHBOR", "SOFTMAX", "SQUEEZE", "STRIDED_SLICE", "SUB", "TANH", "TILE",
                 "TRANSPOSE", "TRANSPOSE_CONV")
# Builtin operators on int32 shape values, computed at compile time (batch 1) when their inputs are known:
# the SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE of a dynamic-batch Keras export.
FOLDED_OPS = ("SHAPE", "PACK", "CONCATENATION", "STRIDED_SLICE", "GATHER", "MUL", "ADD", "SUB", "RESHAPE",
              "SQUEEZE", "EXPAND_DIMS", "CAST", "REDUCE_PROD", "FLOOR_DIV")

# ActivationFunctionType -> float clamp range (None: not supported as a fused activation)
_ACTIVATIONS = {0: ("NONE", -INF, INF), 1: ("RELU", 0.0, INF), 2: ("RELU_N1_TO_1", -1.0, 1.0),
                3: ("RELU6", 0.0, 6.0), 4: ("TANH", None, None), 5: ("SIGN_BIT", None, None)}

CONVERT_HINT = ("convert with full-integer quantization: converter.optimizations = [tf.lite.Optimize.DEFAULT], "
                "converter.representative_dataset = <calibration samples>, converter.target_spec."
                "supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8], converter.inference_input_type = tf.int8, "
                "converter.inference_output_type = tf.int8")


class _Unsupported(Exception):
    """An operator the frontend cannot convert; collected, reported all at once."""


class _Malformed(Exception):
    """The file's structure is broken (truncated, garbage, inconsistent)."""


# --------------------------------------------------------------------------
# reading the flatbuffer into plain Python objects


@dataclass
class _TTensor:
    index: int
    name: str
    type: str  # "int8", "float32", ...
    shape: tuple[int, ...]
    data: np.ndarray | None  # constant value (C order, shape `shape`), None for activations
    scale: np.ndarray | None  # float64 (exactly the file's float32 values), None if absent
    zero_point: np.ndarray | None  # int64
    quantized_dimension: int = 0
    is_variable: bool = False
    custom_quantization: bool = False
    sparse: bool = False


@dataclass
class _TOp:
    index: int
    opname: str  # builtin name, or "CUSTOM"
    custom_code: str
    inputs: list[int]
    outputs: list[int]
    options: Any  # the schema's options object, or None
    label: str = field(default="")


@dataclass
class _TModel:
    tensors: list[_TTensor]
    operators: list[_TOp]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int


def _check_count(n: int, data: bytes, what: str) -> int:
    # every vector element takes at least one byte: a larger count is garbage
    if n < 0 or n > len(data):
        raise _Malformed(f"{what} count {n} is impossible for a {len(data)}-byte file")
    return int(n)


def _int_vector(obj: Any, name: str, data: bytes, what: str) -> list[int]:
    n = _check_count(getattr(obj, name + "Length")(), data, what)
    if n == 0:
        return []
    arr = getattr(obj, name + "AsNumpy")()
    return [int(v) for v in np.asarray(arr).reshape(-1)[:n]]


def _options(op: Any, opname: str) -> Any:
    """The operator's builtin options as the schema's typed table (or None)."""
    import tflite

    table = op.BuiltinOptions()
    if table is None or op.BuiltinOptionsType() == 0:
        return None
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
    cls = getattr(tflite, names.get(op.BuiltinOptionsType(), ""), None)
    if cls is None:
        return None
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


def read_model(data: bytes) -> _TModel:
    """Parse the flatbuffer with the `tflite` schema package; structural
    problems raise _Malformed."""
    import tflite
    from tflite.utils import BUILTIN_OPCODE2NAME

    if len(data) < 8:
        raise _Malformed("the file is shorter than a flatbuffer header")
    if data[4:8] != FILE_IDENTIFIER:
        raise _Malformed(f"no '{FILE_IDENTIFIER.decode()}' file identifier; it is not a TFLite flatbuffer")
    model = tflite.Model.GetRootAsModel(data, 0)
    n_sub = _check_count(model.SubgraphsLength(), data, "subgraph")
    if n_sub < 1:
        raise _Malformed("the model has no subgraph")
    codes = []
    for i in range(_check_count(model.OperatorCodesLength(), data, "operator code")):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        codes.append((BUILTIN_OPCODE2NAME.get(code, f"BUILTIN_{code}"),
                      text(custom) if custom else ""))
    buffers = []
    for i in range(_check_count(model.BuffersLength(), data, "buffer")):
        b = model.Buffers(i)
        offset, size = int(b.Offset()), int(b.Size())
        if offset > 1:  # large models keep buffer data after the flatbuffer
            if offset + size > len(data):
                raise _Malformed(f"buffer {i} ({size} bytes at offset {offset}) lies past the end of the file")
            buffers.append(np.frombuffer(data, np.uint8, size, offset))
        elif not b.DataIsNone() and b.DataLength() > 0:
            _check_count(b.DataLength(), data, f"buffer {i} byte")
            buffers.append(np.asarray(b.DataAsNumpy(), dtype=np.uint8))
        else:
            buffers.append(None)
    sg = model.Subgraphs(0)
    tensors = []
    for i in range(_check_count(sg.TensorsLength(), data, "tensor")):
        t = sg.Tensors(i)
        raw_name = t.Name()
        name = text(raw_name) if raw_name else f"tensor_{i}"
        ttype = _TYPE_NAMES.get(int(t.Type()), f"type {int(t.Type())}")
        shape = tuple(_int_vector(t, "Shape", data, f"tensor {i} shape"))
        if any(d < 0 for d in shape):
            raise _Malformed(f"tensor {i} '{name}' has a negative dimension {shape}")
        buf_index = int(t.Buffer())
        if not 0 <= buf_index < max(len(buffers), 1):
            raise _Malformed(f"tensor {i} '{name}' refers to buffer {buf_index} of {len(buffers)}")
        raw = buffers[buf_index] if buffers else None
        q = t.Quantization()
        scale = zero_point = None
        qdim, custom_q = 0, False
        if q is not None:
            if q.ScaleLength():
                _check_count(q.ScaleLength(), data, f"tensor {i} scale")
                scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).astype(np.float64)
            if q.ZeroPointLength():
                _check_count(q.ZeroPointLength(), data, f"tensor {i} zero point")
                zero_point = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64)
            qdim = int(q.QuantizedDimension())
            custom_q = int(q.DetailsType()) != 0
        value = None
        if raw is not None:
            dtype = _NUMPY_TYPES.get(ttype)
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if dtype is not None:
                need = count * np.dtype(dtype).itemsize
                if raw.size != need:
                    raise _Malformed(f"tensor {i} '{name}' {ttype}{list(shape)} needs {need} bytes, "
                                     f"its buffer has {raw.size}")
                value = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape).copy()
            else:
                value = np.zeros(0, np.uint8)  # a constant of a type we never read (reported elsewhere)
        tensors.append(_TTensor(i, name, ttype, shape, value, scale, zero_point, qdim,
                                bool(t.IsVariable()), custom_q, t.Sparsity() is not None))
    n_tensors = len(tensors)

    def check_indices(indices: list[int], what: str, optional: bool = False) -> list[int]:
        for k in indices:
            if not (-1 if optional else 0) <= k < n_tensors:
                raise _Malformed(f"{what} refers to tensor {k} of {n_tensors}")
        return indices

    operators = []
    for i in range(_check_count(sg.OperatorsLength(), data, "operator")):
        op = sg.Operators(i)
        code_index = int(op.OpcodeIndex())
        if not 0 <= code_index < len(codes):
            raise _Malformed(f"operator {i} refers to operator code {code_index} of {len(codes)}")
        opname, custom = codes[code_index]
        ins = check_indices(_int_vector(op, "Inputs", data, f"operator {i} input"), f"operator {i}", True)
        outs = check_indices(_int_vector(op, "Outputs", data, f"operator {i} output"), f"operator {i}")
        opt = _options(op, opname) if opname != "CUSTOM" else None
        operators.append(_TOp(i, opname, custom, ins, outs, opt))
    inputs = check_indices(_int_vector(sg, "Inputs", data, "subgraph input"), "the subgraph's inputs")
    outputs = check_indices(_int_vector(sg, "Outputs", data, "subgraph output"), "the subgraph's outputs")
    return _TModel(tensors, operators, inputs, outputs, n_sub)


def tensor_names(tensors: list[_TTensor]) -> list[str]:
    """IR tensor name of each TFLite tensor (by index): its name, made unique
    in index order. ``mcuforge compare`` relies on this mapping."""
    taken: set[str] = set()
    names = []
    for t in tensors:
        name = unique_name(taken, t.name or f"tensor_{t.index}")
        taken.add(name)
        names.append(name)
    return names


def parse(data: bytes, source: str) -> _TModel:
    """read_model with every structural failure as a McuforgeError naming `source`."""
    if not data:
        raise McuforgeError(f"{source}: not a valid TFLite model (the file is empty)")
    try:
        return read_model(data)
    except _Malformed as err:
        raise McuforgeError(f"{source}: not a valid TFLite model ({err}); the file may be truncated or "
                            f"not a .tflite model at all: export it again") from None
    except Exception as err:  # offsets past the end of a truncated or garbage file
        raise McuforgeError(f"{source}: not a valid TFLite model (cannot read the flatbuffer: "
                            f"{type(err).__name__}: {_one_line(err)}); the file may be truncated or not a "
                            f".tflite model at all: export it again") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


# --------------------------------------------------------------------------
# public API


def load(path: str | Path, **options: Any) -> Graph:
    """Read a full-integer int8 .tflite file into a pre-quantized Graph.

    Options: ``name`` (C identifier of the model, default: the file stem).
    """
    path = Path(path)
    if not path.exists():
        raise McuforgeError(f"{path}: no such file")
    if path.is_dir():
        raise McuforgeError(f"{path}: is a directory, not a TFLite model file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise McuforgeError(f"{path}: cannot read ({err.strerror or err})") from None
    return load_bytes(data, source=str(path), name=options.get("name") or c_identifier(path.stem))


def load_bytes(data: bytes, *, source: str, name: str = "model") -> Graph:
    """Like `load` for the bytes of a .tflite file; `source` names it in errors."""
    model = parse(data, source)
    try:
        graph = (_FloatImporter if is_float_model(model) else _Importer)(model, source).run()
    except McuforgeError:
        raise
    except Exception as err:  # inconsistent contents the checks above did not catch
        raise McuforgeError(f"{source}: cannot import the model, it looks malformed ({type(err).__name__}: "
                            f"{_one_line(err)}); if TFLite runs it, please report this as a bug") from None
    graph.name = c_identifier(name)
    graph.source = source
    graph.source_format = "tflite"
    graph.source_layout = "NHWC"
    graph.source_hash = hashlib.sha256(data).hexdigest()
    return graph


def sniff(head: bytes) -> bool:
    """A TFLite flatbuffer carries the identifier 'TFL3' at bytes 4..8."""
    return len(head) >= 8 and head[4:8] == FILE_IDENTIFIER


# --------------------------------------------------------------------------
# helpers


def _shape_str(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def tflite_padding(same: bool, size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """(output size, pad before, pad after) as TFLite computes them.

    >>> tflite_padding(True, 96, 3, 2)     # SAME, stride 2, even size: 0 before, 1 after
    (48, 0, 1)
    >>> tflite_padding(True, 49, 10, 2)    # KWS's first conv (height)
    (25, 4, 5)
    >>> tflite_padding(False, 49, 10, 2)   # VALID
    (20, 0, 0)
    """
    effective = (kernel - 1) * dilation + 1
    if same:
        out = (size + stride - 1) // stride
        total = max((out - 1) * stride + effective - size, 0)
        return out, total // 2, total - total // 2
    return (size - effective + stride) // stride, 0, 0


def strided_slice_ranges(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink_mask: int,
                         offset: bool) -> list[tuple[int, int]]:
    """(first index, count) per axis as TFLite's StridedSliceStartForAxis /
    StridedSliceEndForAxis resolve them (negative indices, clamping, masks).

    >>> strided_slice_ranges((1, 10, 4), [0, 1, -1], [1, -1, 0], [1, 3, -1], 0, 0, 0, False)
    [(0, 1), (1, 3), (3, 3)]
    """
    out = []
    for d, size in enumerate(shape):
        stride, start, stop = int(strides[d]), int(begin[d]), int(end[d])
        if start < 0:
            start += size
        start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
        if begin_mask & (1 << d):
            start = 0 if stride > 0 else size - 1
        if shrink_mask & (1 << d):
            stop = start if start >= size else start + 1
        else:
            if offset:
                stop += start
            if stop < 0:
                stop += size
            stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
            if end_mask & (1 << d):
                stop = size if stride > 0 else -1
        count = max(0, -(-(stop - start) // stride)) if stride > 0 else max(0, -(-(start - stop) // -stride))
        out.append((start, count))
    return out


def tflite_nearest(index: int, in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> int:
    """TFLite GetNearestNeighbor, in float32 as TFLM computes it."""
    f = np.float32
    scale = (f(in_size - 1) / f(out_size - 1)) if align_corners and out_size > 1 else f(in_size) / f(out_size)
    value = (f(index) + f(0.5 if half_pixel else 0.0)) * scale
    v = float(value)
    src = int(math.copysign(math.floor(abs(v) + 0.5), v)) if align_corners else int(math.floor(v))
    src = min(src, in_size - 1)
    return max(0, src) if half_pixel else src


def _act_range(code: int, out: _TTensor) -> tuple[float, float]:
    """A fused activation as (act_min, act_max) on the output's real scale.

    TFLite clamps to ``zp + round(f / scale)`` with the division done in
    float32; ``quantize.clamp_range`` divides in float64. Returning the
    integer step times the scale makes both give TFLite's integer exactly."""
    name, lo, hi = _ACTIVATIONS.get(int(code), (f"activation {code}", None, None))
    if lo is None:
        raise _Unsupported(f"fused activation {name} is not supported (only NONE, RELU, RELU6, RELU_N1_TO_1)")
    scale = float(out.scale[0])

    def on_grid(f: float) -> float:
        if not np.isfinite(f):
            return f
        q = np.float32(f) / np.float32(scale)
        return float(np.sign(q) * np.floor(abs(float(q)) + 0.5)) * scale
    return on_grid(lo), on_grid(hi)


def _option(opt: Any, getter: str, default: Any) -> Any:
    return default if opt is None else getattr(opt, getter)()


# --------------------------------------------------------------------------
# 16x8 models (int16 activations)

ACTIVATION_TYPES = ("int8", "int16")


def _check_int16_activation(t: _TTensor, quant: Quant, what: str) -> None:
    """int16 activations are symmetric: zero point 0 (TFLite's 16x8 scheme)."""
    if int(quant.zero_point[0]) != 0:
        raise _Unsupported(f"{what} '{t.name}' is int16 with zero point {int(quant.zero_point[0])}: 16x8 models "
                           f"quantize activations symmetrically (zero point 0)")


def _check_int64_bias(t: _TTensor, x: Tensor) -> None:
    if x.dtype != "int16":
        raise _Unsupported(f"bias '{t.name}' is int64 with {x.dtype} activations (int64 biases belong to 16x8 "
                           f"models)")


def shape_only_inputs(model: _TModel) -> set[int]:
    """Model inputs that only give TRANSPOSE_CONV its output shape (an int32
    vector of 4): TFLM takes the output tensor's declared shape, so the
    compiled model folds them and does not take them as inputs."""
    uses: dict[int, list[tuple[str, int]]] = {}
    for op in model.operators:
        for j, k in enumerate(op.inputs):
            uses.setdefault(k, []).append((op.opname, j))
    folded = set()
    for k in model.inputs:
        t = model.tensors[k]
        if t.type == "int32" and t.shape == (4,) and uses.get(k) and \
                all(use == ("TRANSPOSE_CONV", 0) for use in uses[k]) and k not in model.outputs:
            folded.add(k)
    return folded


# --------------------------------------------------------------------------
# the importer


class _Importer:
    def __init__(self, model: _TModel, source: str):
        self.model = model
        self.source = source
        self.t = model.tensors
        self.names = tensor_names(model.tensors)
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.unsupported_ops: list[str] = []
        self.node_problems: list[str] = []
        self.producer: dict[int, int] = {}
        self.model_inputs, self.model_outputs = list(model.inputs), list(model.outputs)
        self.skipped: set[int] = set()

    # ---- driver --------------------------------------------------------
    def run(self) -> Graph:
        m = self.model
        if not m.operators:
            raise McuforgeError(f"{self.source}: the model has no operators; nothing to compile")
        if not m.inputs or not m.outputs:
            raise McuforgeError(f"{self.source}: the model has no {'inputs' if not m.inputs else 'outputs'}")
        self.skipped = self._float_io() | fold_shape_arithmetic(m)
        self._check_integer_model()
        for op in m.operators:
            for k in op.outputs:
                self.producer.setdefault(k, op.index)
        self.shape_inputs = shape_only_inputs(m)
        for k in self.model_inputs:
            if k not in self.shape_inputs:
                try:
                    self._activation(k, "model input")
                except _Unsupported as err:
                    self.node_problems.append(f"model input {k}: {err}")
        for op in m.operators:
            if op.index not in self.skipped:
                self._convert(op)
        self._raise_problems()
        outputs = []
        for k in self.model_outputs:
            name = self.names[k]
            if name not in self.tensors or self.tensors[name].is_const:
                raise McuforgeError(f"{self.source}: output tensor {k} '{self.t[k].name}' is not computed by "
                                    f"any operator")
            outputs.append(name)
        graph = Graph(name="model", tensors=self.tensors, nodes=self.nodes,
                      inputs=[self.names[k] for k in self.model_inputs if k not in self.shape_inputs],
                      outputs=outputs)
        graph.toposort()
        graph.remove_unused()
        return graph

    def _check_integer_model(self) -> None:
        """Float, dynamic-range, uint8 and 16x8 models: one clear error each."""
        m = self.model
        ends = [(k, "input") for k in self.model_inputs] + [(k, "output") for k in self.model_outputs]
        for k, what in ends:
            t = self.t[k]
            if t.type in _FLOAT_TYPES:
                raise McuforgeError(
                    f"{self.source}: model {what} {k} '{t.name}' is {t.type} but the model is neither "
                    f"full-integer nor float (a dynamic-range or partly quantized model, e.g. int8 weights with "
                    f"float activations); mcuforge compiles full-integer int8 TFLite models (float32 ends "
                    f"around them are fine): {CONVERT_HINT}; or convert without quantization and compile "
                    f"the float model with --calibration")
        for t in self.t:
            if t.type == "uint8":
                raise McuforgeError(
                    f"{self.source}: tensor {t.index} '{t.name}' is uint8: this model uses the old uint8 "
                    f"quantization; mcuforge needs int8 tensors: {CONVERT_HINT}")
        for op in m.operators:
            for k in op.inputs if op.index not in self.skipped else ():
                if k >= 0 and self.t[k].data is not None and self.t[k].type in _FLOAT_TYPES:
                    t = self.t[k]
                    raise McuforgeError(
                        f"{self.source}: operator {op.index} ({op.opname}) reads the {t.type} constant {k} "
                        f"'{t.name}': the model has float weights (a float or dynamic-range quantized model); "
                        f"mcuforge compiles full-integer int8 TFLite models: {CONVERT_HINT}")

    def _raise_problems(self) -> None:
        parts = []
        if self.unsupported_ops:
            parts.append("unsupported operators: " + ", ".join(self.unsupported_ops))
        if self.node_problems:
            parts.append("operators that cannot be converted: " + "; ".join(self.node_problems))
        if parts:
            count = len(self.unsupported_ops) + len(self.node_problems)
            raise UnsupportedModelError(
                f"{self.source}: {count} problem(s): {' | '.join(parts)}. What to do: replace these layers "
                f"with supported ones or move them out of the converted model (supported TFLite operators: "
                f"{', '.join(SUPPORTED_OPS)}; int8 only)")

    # ---- per operator ----------------------------------------------------
    def _convert(self, op: _TOp) -> None:
        op.label = f"operator {op.index} ({op.opname})"
        if op.opname == "CUSTOM":
            self.unsupported_ops.append(f"operator {op.index}: custom operator '{op.custom_code or '?'}'")
            return
        if op.opname not in SUPPORTED_OPS:
            self.unsupported_ops.append(f"operator {op.index}: {op.opname}")
            return
        try:
            if len(op.outputs) != 1:
                raise _Unsupported(f"has {len(op.outputs)} outputs (expected 1)")
            getattr(self, "_op_" + op.opname)(op)
        except _Unsupported as err:
            self.node_problems.append(f"{op.label}: {err}")
        except _Malformed as err:
            raise McuforgeError(f"{self.source}: not a valid TFLite model ({op.label}: {err})") from None

    # ---- tensors -----------------------------------------------------------
    def _quant(self, t: _TTensor, what: str) -> Quant:
        if t.custom_quantization:
            raise _Unsupported(f"{what} '{t.name}' uses custom quantization details")
        if t.scale is None or t.zero_point is None or t.scale.size == 0:
            raise _Unsupported(f"{what} '{t.name}' has no quantization parameters (scale and zero point)")
        if not np.all(np.isfinite(t.scale)) or np.any(t.scale <= 0):
            raise _Unsupported(f"{what} '{t.name}' has a non-positive or non-finite scale")
        return Quant(t.scale.copy(), np.broadcast_to(t.zero_point, t.scale.shape).copy())

    def _activation(self, k: int, what: str = "input") -> str:
        """IR name of activation tensor k (created on first use)."""
        if k < 0:
            raise _Unsupported(f"{what} is missing")
        t = self.t[k]
        name = self.names[k]
        if name in self.tensors:
            return name
        if t.data is not None:
            raise _Unsupported(f"{what} '{t.name}' is a constant where an activation is expected")
        if t.is_variable:
            raise _Unsupported(f"{what} '{t.name}' is a variable tensor (stateful models are not supported)")
        if t.type not in ACTIVATION_TYPES:
            raise _Unsupported(f"{what} '{t.name}' is {t.type} (activations must be int8, or int16 in a 16x8 model)")
        if not t.shape:
            raise _Unsupported(f"{what} '{t.name}' is a scalar")
        shape = (1,) + t.shape if len(t.shape) == 1 else t.shape  # a vector: (1, C) in the IR
        if shape[0] != 1:
            raise _Unsupported(f"{what} '{t.name}' has shape {_shape_str(t.shape)}: batch must be 1")
        quant = self._quant(t, what)
        if quant.scale.size != 1:
            raise _Unsupported(f"{what} '{t.name}' is quantized per channel (activations must be per tensor)")
        if t.type == "int16":
            _check_int16_activation(t, quant, what)
        elif not -128 <= int(quant.zero_point[0]) <= 127:
            raise _Unsupported(f"{what} '{t.name}' has zero point {int(quant.zero_point[0])} outside int8")
        self.tensors[name] = Tensor(name, shape, t.type, None, quant)
        return name

    def _input(self, op: _TOp, j: int, what: str = "input") -> str:
        if j >= len(op.inputs):
            raise _Unsupported(f"has no {what} (input {j})")
        return self._activation(op.inputs[j], what)

    def _output(self, op: _TOp) -> str:
        k = op.outputs[0]
        if self.names[k] in self.tensors:
            raise _Malformed(f"tensor {k} '{self.t[k].name}' is written twice")
        return self._activation(k, "output")

    def _const(self, op: _TOp, j: int, what: str) -> _TTensor:
        if j >= len(op.inputs) or op.inputs[j] < 0:
            raise _Unsupported(f"has no {what}")
        t = self.t[op.inputs[j]]
        if t.data is None:
            raise _Unsupported(f"its {what} '{t.name}' is not a constant")
        return t

    def _weight(self, op: _TOp, j: int, axis: int, channels: int) -> str:
        t = self._const(op, j, "weights")
        if t.type != "int8":
            raise _Unsupported(f"weights '{t.name}' are {t.type} (int8 only)")
        if t.sparse:
            raise _Unsupported(f"weights '{t.name}' are sparse (densify them when converting)")
        q = self._quant(t, "weights")
        if np.any(q.zero_point != 0):
            raise _Unsupported(f"weights '{t.name}' have a non-zero zero point (weights must be symmetric)")
        if q.scale.size == 1:
            quant = Quant(q.scale, q.zero_point, None)
        elif q.scale.size == channels and t.quantized_dimension == axis:
            quant = Quant(q.scale, q.zero_point, axis)
        else:
            raise _Unsupported(f"weights '{t.name}' have {q.scale.size} scales along axis "
                               f"{t.quantized_dimension}; expected 1 or {channels} along axis {axis}")
        return self._const_tensor(t, "int8", quant)

    def _bias(self, op: _TOp, j: int, channels: int) -> str:
        if j >= len(op.inputs) or op.inputs[j] < 0:
            return ""
        t = self._const(op, j, "bias")
        if t.type == "int64":
            _check_int64_bias(t, self.tensors[self._activation(op.inputs[2 if op.opname == "TRANSPOSE_CONV" else 0])])
            return self._const_tensor(t, "int64", None, t.data.reshape(channels))
        if t.type != "int32":
            raise _Unsupported(f"bias '{t.name}' is {t.type} (int32, or int64 in a 16x8 model)")
        if self.t[op.inputs[2 if op.opname == "TRANSPOSE_CONV" else 0]].type == "int16":
            raise _Unsupported(f"bias '{t.name}' is int32 with int16 activations: mcuforge follows TFLM's 16x8 "
                               f"kernels with int64 biases (convert with the default 16x8 settings)")
        if t.data.size != channels:
            raise _Unsupported(f"bias '{t.name}' has {t.data.size} values for {channels} output channels")
        return self._const_tensor(t, "int32", None, t.data.reshape(channels))

    def _const_tensor(self, t: _TTensor, dtype: str, quant: Quant | None, data: np.ndarray | None = None) -> str:
        name = self.names[t.index]
        if name not in self.tensors:
            value = np.ascontiguousarray(t.data if data is None else data)
            self.tensors[name] = Tensor(name, value.shape, dtype, value, quant)
        return name

    def _int_const(self, op: _TOp, j: int, what: str) -> np.ndarray:
        t = self._const(op, j, what)
        if t.type not in ("int32", "int64"):
            raise _Unsupported(f"its {what} '{t.name}' is {t.type} (int32 expected)")
        return t.data.astype(np.int64).reshape(-1)

    def _emit(self, op: _TOp, ir_op: str, inputs: list[str], attrs: dict[str, Any]) -> None:
        out = self._output(op)
        self.nodes.append(Node(f"{op.opname}_{op.index}", ir_op, inputs, [out], attrs))

    def _check_shape(self, op: _TOp, out: str, expected: tuple[int, ...]) -> None:
        declared = self.tensors[out].shape
        if tuple(declared) != tuple(expected):
            raise _Unsupported(f"output '{self.t[op.outputs[0]].name}' is declared {_shape_str(declared)}, "
                               f"TFLite computes {_shape_str(expected)}")

    def _same_quant(self, op: _TOp, a: str, b: str) -> None:
        if not self.tensors[a].quant.same_as(self.tensors[b].quant):
            raise _Unsupported(f"input '{a}' and output '{b}' are quantized differently (TFLM requires the "
                               f"same scale and zero point for {op.opname})")

    def _fused(self, op: _TOp, out_index: int) -> tuple[float, float]:
        code = _option(op.options, "FusedActivationFunction", 0)
        return _act_range(code, self.t[out_index])

    # ---- operators ---------------------------------------------------------
    def _conv_like(self, op: _TOp, depthwise: bool) -> None:
        x = self._input(op, 0)
        in_shape = self.tensors[x].shape
        if len(in_shape) != 4:
            raise _Unsupported(f"input has shape {_shape_str(in_shape)}, expected (1, H, W, C)")
        _, in_h, in_w, in_c = in_shape
        out_t = self.t[op.outputs[0]]
        if len(out_t.shape) != 4:
            raise _Unsupported(f"output has shape {_shape_str(out_t.shape)}, expected (1, H, W, C)")
        out_c = out_t.shape[3]
        wt = self._const(op, 1, "weights")
        if len(wt.shape) != 4:
            raise _Unsupported(f"weights have shape {_shape_str(wt.shape)}, expected 4-D")
        opt = op.options
        stride_h, stride_w = _option(opt, "StrideH", 0), _option(opt, "StrideW", 0)
        dil_h, dil_w = _option(opt, "DilationHFactor", 1), _option(opt, "DilationWFactor", 1)
        if min(stride_h, stride_w, dil_h, dil_w) < 1:
            raise _Unsupported(f"strides ({stride_h}, {stride_w}) and dilations ({dil_h}, {dil_w}) must be >= 1")
        attrs: dict[str, Any] = {}
        if depthwise:
            if wt.shape[0] != 1 or wt.shape[3] != out_c:
                raise _Unsupported(f"weights of shape {_shape_str(wt.shape)} do not fit {out_c} output channels")
            if out_c % in_c:
                raise _Unsupported(f"{out_c} output channels are not a multiple of {in_c} input channels")
            attrs["depth_multiplier"] = out_c // in_c
            w = self._weight(op, 1, 3, out_c)
        else:
            if wt.shape[0] != out_c or wt.shape[3] != in_c:
                raise _Unsupported(f"weights of shape {_shape_str(wt.shape)} do not fit input channels {in_c} and "
                                   f"output channels {out_c} (grouped convolution is not supported)")
            w = self._weight(op, 1, 0, out_c)
        k_h, k_w = wt.shape[1], wt.shape[2]
        b = self._bias(op, 2, out_c)
        same = _option(opt, "Padding", 0) == 0
        out_h, top, bottom = tflite_padding(same, in_h, k_h, stride_h, dil_h)
        out_w, left, right = tflite_padding(same, in_w, k_w, stride_w, dil_w)
        act_min, act_max = self._fused(op, op.outputs[0])
        attrs.update(strides=(stride_h, stride_w), dilations=(dil_h, dil_w), pads=(top, left, bottom, right),
                     act_min=act_min, act_max=act_max)
        self._emit(op, "depthwise_conv2d" if depthwise else "conv2d", [x, w, b] if b else [x, w], attrs)
        self._check_shape(op, self.names[op.outputs[0]], (1, out_h, out_w, out_c))

    def _op_CONV_2D(self, op: _TOp) -> None:
        self._conv_like(op, depthwise=False)

    def _op_DEPTHWISE_CONV_2D(self, op: _TOp) -> None:
        self._conv_like(op, depthwise=True)

    def _op_FULLY_CONNECTED(self, op: _TOp) -> None:
        x = self._input(op, 0)
        wt = self._const(op, 1, "weights")
        if len(wt.shape) != 2:
            raise _Unsupported(f"weights have shape {_shape_str(wt.shape)}, expected (N, K)")
        if _option(op.options, "WeightsFormat", 0) != 0:
            raise _Unsupported("shuffled weights format is not supported (DEFAULT only)")
        n, k = wt.shape
        size = self.tensors[x].size
        if k == 0 or size % k:
            raise _Unsupported(f"input of {size} values does not split into rows of {k}")
        rows = size // k
        w = self._weight(op, 1, 0, n)
        b = self._bias(op, 2, n)
        act_min, act_max = self._fused(op, op.outputs[0])
        self._emit(op, "fully_connected", [x, w, b] if b else [x, w], {"act_min": act_min, "act_max": act_max})
        out = self.names[op.outputs[0]]
        if self.tensors[out].size != rows * n:
            in_shape = self.tensors[x].shape
            expected = in_shape[:-1] + (n,) if _option(op.options, "KeepNumDims", False) else (rows, n)
            self._check_shape(op, out, expected)

    def _operand(self, op: _TOp, j: int) -> str:
        """An activation input, or a constant single int8 value (the scalar of
        a Keras `x * (1/6)` or `x + 3`)."""
        if j < len(op.inputs) and op.inputs[j] >= 0 and self.t[op.inputs[j]].data is not None:
            t = self._const(op, j, "constant operand")
            if t.type != "int8" or t.data.size < 1:
                raise _Unsupported(f"constant operand '{t.name}' must be int8 values "
                                   f"(got {t.type}{_shape_str(t.shape)})")
            q = self._quant(t, "constant operand")
            if q.scale.size != 1:
                raise _Unsupported(f"constant operand '{t.name}' is quantized per channel")
            return self._const_tensor(t, "int8", Quant(q.scale, q.zero_point))
        return self._input(op, j)

    def _binary(self, op: _TOp, ir_op: str, fused: bool = True) -> None:
        a, b = self._operand(op, 0), self._operand(op, 1)
        ta, tb = self.tensors[a], self.tensors[b]
        if ta.is_const and tb.is_const:
            raise _Unsupported("both operands are constants")
        rank = max(len(ta.shape), len(tb.shape))
        if (ta.is_const and ta.size == 1) or (tb.is_const and tb.size == 1):
            expected = (tb if ta.is_const else ta).shape
        elif ta.shape == tb.shape:
            expected = ta.shape
        elif ir_op in ("maximum", "minimum") and (ta.is_const or tb.is_const):
            raise _Unsupported(f"a constant operand of {_shape_str((ta if ta.is_const else tb).shape)} is not "
                               f"supported (a single value only)")
        else:
            pa, pb = (1,) * (rank - len(ta.shape)) + ta.shape, (1,) * (rank - len(tb.shape)) + tb.shape
            if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)):
                raise _Unsupported(f"shapes {_shape_str(ta.shape)} and {_shape_str(tb.shape)} do not broadcast")
            expected = tuple(max(x, y) for x, y in zip(pa, pb))
            if len(expected) > 4:
                raise _Unsupported(f"broadcasting to rank {len(expected)} is not supported (rank 4 at most)")
        attrs: dict[str, Any] = {}
        if fused:
            attrs["act_min"], attrs["act_max"] = self._fused(op, op.outputs[0])
        self._emit(op, ir_op, [a, b], attrs)
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, expected)
        if ir_op in ("maximum", "minimum"):
            for i in (a, b):  # TFLM compares the raw int8 values
                self._same_quant(op, i, out)

    def _op_ADD(self, op: _TOp) -> None:
        self._binary(op, "add")

    def _op_SUB(self, op: _TOp) -> None:
        self._binary(op, "sub")

    def _op_MUL(self, op: _TOp) -> None:
        self._binary(op, "mul")

    def _op_MAXIMUM(self, op: _TOp) -> None:
        self._binary(op, "maximum", fused=False)

    def _op_MINIMUM(self, op: _TOp) -> None:
        self._binary(op, "minimum", fused=False)

    def _unary(self, op: _TOp, ir_op: str, attrs: dict[str, Any]) -> str:
        x = self._input(op, 0)
        self._emit(op, ir_op, [x], attrs)
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, self.tensors[x].shape)
        return out

    def _op_HARD_SWISH(self, op: _TOp) -> None:
        self._unary(op, "hard_swish", {})

    def _op_LEAKY_RELU(self, op: _TOp) -> None:
        self._unary(op, "leaky_relu", {"alpha": float(np.float32(_option(op.options, "Alpha", 0.0)))})

    def _fixed_output(self, op: _TOp, out: str, scale: float, zp: int) -> None:
        if self.tensors[out].dtype == "int16":
            return  # 16x8: the output scale 2^-15 is checked where the layer is lowered (ops16)
        q = self.tensors[out].quant
        if float(q.scale[0]) != scale or int(q.zero_point[0]) != zp:
            raise _Unsupported(f"output is quantized with scale {float(q.scale[0])!r} and zero point "
                               f"{int(q.zero_point[0])}; TFLite's int8 {op.opname} writes scale {scale!r}, "
                               f"zero point {zp}")

    def _op_LOGISTIC(self, op: _TOp) -> None:
        self._fixed_output(op, self._unary(op, "logistic", {}), 1.0 / 256.0, -128)

    def _op_TANH(self, op: _TOp) -> None:
        self._fixed_output(op, self._unary(op, "tanh", {}), 1.0 / 128.0, 0)

    def _op_RELU(self, op: _TOp) -> None:
        # TFLM ReluQuantized: requantize (scale ratio in float32), clamp at the output zero point
        self._unary(op, "clamp", {"act_min": 0.0, "act_max": INF, "float32_ratio": True})

    def _op_RELU6(self, op: _TOp) -> None:
        # TFLM clamps the raw values to [input zero point, 6 quantized with the input's parameters]
        # and does not requantize, whatever the output's parameters
        x = self._input(op, 0)
        q = self.tensors[x].quant
        lo, hi = _act_range(3, self.t[op.inputs[0]])
        zp, scale = int(q.zero_point[0]), float(q.scale[0])
        raw = (max(-128, zp), min(127, zp + round(hi / scale)))
        self._unary(op, "clamp", {"act_min": lo, "act_max": hi, "raw_clamp": raw})

    def _op_STRIDED_SLICE(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        begin, end, strides = (self._int_const(op, j, what) for j, what in ((1, "begin"), (2, "end"), (3, "strides")))
        rank = len(shape)
        if not begin.size == end.size == strides.size == rank:
            raise _Unsupported(f"begin/end/strides of {begin.size}/{end.size}/{strides.size} values for rank {rank}")
        opt = op.options
        if _option(opt, "EllipsisMask", 0) or _option(opt, "NewAxisMask", 0):
            raise _Unsupported("ellipsis and new-axis masks are not supported")
        if np.any(strides == 0):
            raise _Unsupported("a stride is 0")
        ranges = strided_slice_ranges(shape, begin, end, strides, _option(opt, "BeginMask", 0),
                                      _option(opt, "EndMask", 0), _option(opt, "ShrinkAxisMask", 0),
                                      bool(_option(opt, "Offset", False)))
        starts, counts = [r[0] for r in ranges], [r[1] for r in ranges]
        shrink = _option(opt, "ShrinkAxisMask", 0)
        self._emit(op, "strided_slice", [x], {"begin": tuple(starts), "strides": tuple(int(v) for v in strides),
                                               "counts": tuple(counts)})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, tuple(c for d, c in enumerate(counts) if not shrink & (1 << d)))
        self._same_quant(op, x, out)

    def _op_RESIZE_NEAREST_NEIGHBOR(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        size = self._int_const(op, 1, "size")
        if len(shape) != 4 or size.size != 2 or np.any(size <= 0):
            raise _Unsupported(f"resize of shape {_shape_str(shape)} to {size.tolist()} (a (1, H, W, C) input and "
                               f"two positive sizes expected)")
        align, half = bool(_option(op.options, "AlignCorners", False)), bool(_option(op.options, "HalfPixelCenters", False))
        rows = [tflite_nearest(i, shape[1], int(size[0]), align, half) for i in range(int(size[0]))]
        cols = [tflite_nearest(i, shape[2], int(size[1]), align, half) for i in range(int(size[1]))]
        self._emit(op, "resize_nearest", [x], {"row_index": tuple(rows), "col_index": tuple(cols)})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, (1, int(size[0]), int(size[1]), shape[3]))
        self._same_quant(op, x, out)

    def _op_TRANSPOSE_CONV(self, op: _TOp) -> None:
        x = self._input(op, 2)
        in_shape = self.tensors[x].shape
        if op.inputs and op.inputs[0] in self.shape_inputs:  # folded: the output tensor's declared shape
            out_shape = tuple(int(v) for v in self.t[op.outputs[0]].shape)
        else:
            out_shape = tuple(int(v) for v in self._int_const(op, 0, "output shape"))
        wt = self._const(op, 1, "weights")
        if len(in_shape) != 4 or len(out_shape) != 4 or len(wt.shape) != 4:
            raise _Unsupported("input, output shape and weights must be 4-D")
        out_c, k_h, k_w, in_c = wt.shape
        if in_c != in_shape[3] or out_c != out_shape[3]:
            raise _Unsupported(f"weights of shape {_shape_str(wt.shape)} do not fit {in_shape[3]} input and "
                               f"{out_shape[3]} output channels")
        opt = op.options
        stride_h, stride_w = _option(opt, "StrideH", 0), _option(opt, "StrideW", 0)
        if min(stride_h, stride_w) < 1:
            raise _Unsupported(f"strides ({stride_h}, {stride_w}) must be >= 1")
        same = _option(opt, "Padding", 0) == 0
        # TFLM pads as a convolution from the output's size would (ComputePaddingHeightWidth)
        _, top, bottom = tflite_padding(same, out_shape[1], k_h, stride_h)
        _, left, right = tflite_padding(same, out_shape[2], k_w, stride_w)
        w = self._weight(op, 1, 0, out_c)
        b = self._bias(op, 3, out_c)
        act_min, act_max = self._fused(op, op.outputs[0]) if hasattr(opt, "FusedActivationFunction") else (-INF, INF)
        self._emit(op, "transpose_conv", [x, w, b] if b else [x, w],
                   {"strides": (stride_h, stride_w), "pads": (top, left, bottom, right),
                    "out_hw": out_shape[1:3], "act_min": act_min, "act_max": act_max})
        self._check_shape(op, self.names[op.outputs[0]], out_shape)

    def _op_QUANTIZE(self, op: _TOp) -> None:
        # int8 -> int8 requantization (TFLM Requantize, scale ratio in double)
        self._unary(op, "clamp", {"act_min": -INF, "act_max": INF})

    def _pool(self, op: _TOp, ir_op: str) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        if len(shape) != 4:
            raise _Unsupported(f"input has shape {_shape_str(shape)}, expected (1, H, W, C)")
        opt = op.options
        k_h, k_w = _option(opt, "FilterHeight", 0), _option(opt, "FilterWidth", 0)
        s_h, s_w = _option(opt, "StrideH", 0), _option(opt, "StrideW", 0)
        if min(k_h, k_w, s_h, s_w) < 1:
            raise _Unsupported(f"filter ({k_h}, {k_w}) and strides ({s_h}, {s_w}) must be >= 1")
        same = _option(opt, "Padding", 0) == 0
        out_h, top, bottom = tflite_padding(same, shape[1], k_h, s_h)
        out_w, left, right = tflite_padding(same, shape[2], k_w, s_w)
        act_min, act_max = self._fused(op, op.outputs[0])
        self._emit(op, ir_op, [x], {"kernel": (k_h, k_w), "strides": (s_h, s_w), "pads": (top, left, bottom, right),
                                    "act_min": act_min, "act_max": act_max})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, (1, out_h, out_w, shape[3]))
        self._same_quant(op, x, out)

    def _op_AVERAGE_POOL_2D(self, op: _TOp) -> None:
        self._pool(op, "avg_pool")

    def _op_MAX_POOL_2D(self, op: _TOp) -> None:
        self._pool(op, "max_pool")

    def _op_MEAN(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        axes = sorted({int(a) % len(shape) for a in self._int_const(op, 1, "axes")})
        keepdims = bool(_option(op.options, "KeepDims", False))
        if len(shape) == 4 and axes == [1, 2]:
            self._emit(op, "mean", [x], {"axes": (1, 2), "keepdims": keepdims})
            self._check_shape(op, self.names[op.outputs[0]], (1, 1, 1, shape[3]) if keepdims else (1, shape[3]))
            return
        self._reduce(op, "mean", x, axes, keepdims)

    def _alias(self, op: _TOp) -> None:
        x = self._input(op, 0)
        out = self._output(op)
        in_t, out_t = self.tensors[x], self.tensors[out]
        if in_t.size != out_t.size:
            raise _Unsupported(f"reshapes {_shape_str(in_t.shape)} to {_shape_str(out_t.shape)} "
                               f"(different sizes)")
        self.nodes.append(Node(f"{op.opname}_{op.index}", "reshape", [x], [out], {"shape": out_t.shape}))
        self._same_quant(op, x, out)

    def _op_RESHAPE(self, op: _TOp) -> None:
        self._alias(op)

    def _op_SQUEEZE(self, op: _TOp) -> None:
        self._alias(op)

    def _op_EXPAND_DIMS(self, op: _TOp) -> None:
        self._alias(op)

    def _op_SOFTMAX(self, op: _TOp) -> None:
        x = self._input(op, 0)
        beta = float(np.float32(_option(op.options, "Beta", 1.0)))
        self._emit(op, "softmax", [x], {"beta": beta})
        self._check_shape(op, self.names[op.outputs[0]], self.tensors[x].shape)

    def _pad(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        pads = self._int_const(op, 1, "paddings")
        if pads.size != 2 * len(shape):
            raise _Unsupported(f"paddings of {pads.size} values do not fit rank {len(shape)}")
        per_dim = tuple((int(pads[2 * i]), int(pads[2 * i + 1])) for i in range(len(shape)))
        if any(b < 0 or e < 0 for b, e in per_dim):
            raise _Unsupported("negative paddings are not supported")
        if per_dim[0] != (0, 0):
            raise _Unsupported("padding the batch dimension is not supported")
        value = 0.0
        if op.opname == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            c = self._const(op, 2, "constant value")
            if c.type != "int8" or c.data.size != 1:
                raise _Unsupported(f"constant value '{c.name}' must be one int8 value")
            q = self.tensors[x].quant
            if c.scale is not None and not (c.scale.size == 1 and c.zero_point is not None
                                            and float(c.scale[0]) == float(q.scale[0])
                                            and int(c.zero_point[0]) == int(q.zero_point[0])):
                raise _Unsupported(f"constant value '{c.name}' is quantized differently from the input (TFLM "
                                   f"requires the same scale and zero point)")
            # TFLM writes the constant's int8 value as it is: its real value on the input's scale
            value = (int(c.data.reshape(-1)[0]) - int(q.zero_point[0])) * float(q.scale[0])
        self._emit(op, "pad", [x], {"pads": per_dim, "value": value})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, tuple(d + b + e for d, (b, e) in zip(shape, per_dim)))
        self._same_quant(op, x, out)

    def _op_PAD(self, op: _TOp) -> None:
        self._pad(op)

    def _op_PADV2(self, op: _TOp) -> None:
        self._pad(op)

    def _op_CONCATENATION(self, op: _TOp) -> None:
        ins = [self._input(op, j) for j in range(len(op.inputs))]
        if not ins:
            raise _Unsupported("has no inputs")
        if _option(op.options, "FusedActivationFunction", 0) != 0:
            raise _Unsupported("a fused activation on CONCATENATION is not supported")
        shapes = [self.tensors[i].shape for i in ins]
        rank = len(shapes[0])
        axis = int(_option(op.options, "Axis", 0)) % rank
        if any(len(s) != rank or any(d != e for j, (d, e) in enumerate(zip(s, shapes[0])) if j != axis)
               for s in shapes):
            raise _Unsupported(f"inputs of shapes {[_shape_str(s) for s in shapes]} do not concatenate on axis {axis}")
        expected = list(shapes[0])
        expected[axis] = sum(s[axis] for s in shapes)
        self._emit(op, "concat", ins, {"axis": axis})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, tuple(expected))
        for i in ins:  # TFLM's CONCATENATION copies bytes: it requires this (LiteRT rescales in float)
            self._same_quant(op, i, out)


    # ---- models as converters write them: float ends, vectors, PRELU, TRANSPOSE, reductions ----
    def _float_io(self) -> set[int]:
        """A full-integer model with the converter's default float32 ends: each
        float input read by exactly one QUANTIZE (to int8, or int16 in a 16x8
        model), each float output written by a DEQUANTIZE (of int8 or int16).
        Those operators are left out and the integer tensors become the
        compiled model's input and output; the caller quantizes with the input's scale and zero point as TFLM's
        QUANTIZE does (round(x / scale) + zero point, halves away from zero,
        clamped) and dequantizes as DEQUANTIZE does (scale * (q - zero
        point)), see docs/operators.md. Returns the operators left out."""
        m = self.model
        readers: dict[int, list[_TOp]] = {}
        for op in m.operators:
            for k in op.inputs:
                readers.setdefault(k, []).append(op)
        skipped: set[int] = set()
        for j, k in enumerate(self.model_inputs):
            ops = readers.get(k, [])
            if self.t[k].type != "float32" or len(ops) != 1 or ops[0].opname != "QUANTIZE":
                continue
            q = ops[0]
            if len(q.outputs) == 1 and self.t[q.outputs[0]].type in ("int8", "int16") \
                    and q.outputs[0] not in m.outputs:
                self.model_inputs[j] = q.outputs[0]
                skipped.add(q.index)
        for j, k in enumerate(self.model_outputs):
            if self.t[k].type != "float32" or k not in self.producer_of:
                continue
            d = m.operators[self.producer_of[k]]
            if d.opname == "DEQUANTIZE" and len(d.inputs) == 1 and d.inputs[0] >= 0 \
                    and self.t[d.inputs[0]].type in ("int8", "int16") and self.t[d.inputs[0]].data is None:
                self.model_outputs[j] = d.inputs[0]
                skipped.add(d.index)
        return skipped

    @property
    def producer_of(self) -> dict[int, int]:
        return {k: op.index for op in reversed(self.model.operators) for k in op.outputs}

    def _reduce(self, op: _TOp, ir_op: str, x: str, axes: list[int], keepdims: bool) -> None:
        shape = self.tensors[x].shape
        expected = tuple((1 if d in axes else n) for d, n in enumerate(shape) if keepdims or d not in axes)
        self._emit(op, ir_op, [x], {"axes": tuple(axes), "keepdims": keepdims})
        out = self.names[op.outputs[0]]
        declared = self.tensors[out].shape
        if declared != expected and not (len(expected) == 1 and declared == (1,) + expected):
            self._check_shape(op, out, expected)
        if len(shape) > 4:
            raise _Unsupported(f"rank {len(shape)} > 4 is not supported")
        if ir_op == "reduce_max":
            self._same_quant(op, x, out)

    def _op_REDUCE_MAX(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        axes = sorted({int(a) % len(shape) for a in self._int_const(op, 1, "axes")})
        self._reduce(op, "reduce_max", x, axes, bool(_option(op.options, "KeepDims", False)))

    def _op_TRANSPOSE(self, op: _TOp) -> None:
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        perm = [int(p) for p in self._int_const(op, 1, "permutation")]
        if sorted(perm) != list(range(len(shape))):
            raise _Unsupported(f"permutation {perm} does not fit rank {len(shape)}")
        if len(shape) > 4:
            raise _Unsupported(f"rank {len(shape)} > 4 is not supported")
        if perm[0] != 0:
            raise _Unsupported(f"permutation {perm} moves the batch axis")
        self._emit(op, "transpose", [x], {"perm": tuple(perm)})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, tuple(shape[p] for p in perm))
        self._same_quant(op, x, out)

    def _op_TILE(self, op: _TOp) -> None:
        """TILE (TFLM has no kernel for it; LiteRT does): Keras 3's UpSampling2D is RESHAPE, TILE, RESHAPE."""
        x = self._input(op, 0)
        shape = self.tensors[x].shape
        multiples = [int(m) for m in self._int_const(op, 1, "multiples")]
        if len(multiples) != len(shape) or any(m < 1 for m in multiples):
            raise _Unsupported(f"multiples {multiples} do not fit shape {_shape_str(shape)}")
        if sum((d, m) != (1, 1) for d, m in zip(shape, multiples)) > 4:
            raise _Unsupported(f"tiling {_shape_str(shape)} by {multiples}: more than 4 axes that are not 1")
        if multiples[0] != 1:
            raise _Unsupported("tiling the batch axis is not supported")
        self._emit(op, "tile", [x], {"multiples": tuple(multiples)})
        out = self.names[op.outputs[0]]
        self._check_shape(op, out, tuple(d * m for d, m in zip(shape, multiples)))
        self._same_quant(op, x, out)

    def _op_PRELU(self, op: _TOp) -> None:
        x = self._input(op, 0)
        if len(op.inputs) < 2 or op.inputs[1] < 0:
            raise _Unsupported("has no alpha")
        alpha_t = self.t[op.inputs[1]]
        if alpha_t.data is not None:
            if alpha_t.type != "int8":
                raise _Unsupported(f"alpha '{alpha_t.name}' is {alpha_t.type} (int8 expected)")
            q = self._quant(alpha_t, "alpha")
            if q.scale.size != 1:
                raise _Unsupported(f"alpha '{alpha_t.name}' is quantized per channel (per tensor expected)")
            alpha = self._const_tensor(alpha_t, "int8", Quant(q.scale, q.zero_point))
        else:
            alpha = self._input(op, 1, "alpha")
        shape, a_shape = self.tensors[x].shape, self.tensors[alpha].shape
        if len(a_shape) > len(shape) or any(a not in (1, d) for a, d in zip(a_shape[::-1], shape[::-1])):
            raise _Unsupported(f"alpha of shape {_shape_str(a_shape)} does not broadcast to {_shape_str(shape)}")
        self._emit(op, "prelu", [x, alpha], {})
        self._check_shape(op, self.names[op.outputs[0]], shape)


def fold_shape_arithmetic(model: _TModel) -> set[int]:
    """Compute at compile time, with batch 1, the int32 operators whose
    inputs are all known (SHAPE of an activation is its shape): the
    SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain a Keras model with a
    dynamic batch dimension gets for Flatten or Reshape. The results become
    constants (the RESHAPE keeps its output tensor's declared shape);
    returns the indices of the folded operators."""
    t = model.tensors
    folded: set[int] = set()
    for op in model.operators:
        if op.opname not in FOLDED_OPS or len(op.outputs) != 1 or t[op.outputs[0]].type not in ("int32", "int64"):
            continue
        ins = [t[k] for k in op.inputs if k >= 0]
        if op.opname == "SHAPE":
            if not ins or ins[0].data is not None and ins[0].type not in ("int8", "int32"):
                continue
            value = np.array(ins[0].shape, np.int64)
        elif not ins or any(i.data is None or i.type not in ("int32", "int64") for i in ins):
            continue
        else:
            try:
                value = _fold_one(op, [np.asarray(i.data, np.int64) for i in ins], t[op.outputs[0]].shape)
            except (ValueError, IndexError, TypeError):
                continue
            if value is None:
                continue
        out = t[op.outputs[0]]
        out.data = value.astype(np.int32 if out.type == "int32" else np.int64).reshape(out.shape or value.shape)
        folded.add(op.index)
    return folded


def _fold_one(op: _TOp, vals: list[np.ndarray], out_shape: tuple[int, ...]) -> np.ndarray | None:
    opt, name = op.options, op.opname
    if name == "PACK":
        return np.stack(vals, axis=int(_option(opt, "Axis", 0)))
    if name == "CONCATENATION":
        return np.concatenate([v.reshape(-1) if v.ndim == 0 else v for v in vals],
                              axis=int(_option(opt, "Axis", 0)))
    if name == "STRIDED_SLICE":
        x, begin, end, strides = vals[0], vals[1].reshape(-1), vals[2].reshape(-1), vals[3].reshape(-1)
        if _option(opt, "EllipsisMask", 0) or _option(opt, "NewAxisMask", 0) or x.ndim != begin.size:
            return None
        ranges = strided_slice_ranges(x.shape, begin, end, strides, _option(opt, "BeginMask", 0),
                                      _option(opt, "EndMask", 0), _option(opt, "ShrinkAxisMask", 0),
                                      bool(_option(opt, "Offset", False)))
        index = tuple(slice(s, s + c * int(st), int(st)) if int(st) > 0 else
                      np.arange(s, s + c * int(st), int(st)) for (s, c), st in zip(ranges, strides))
        value = x[index]
        return value.reshape(out_shape) if int(np.prod(out_shape or (1,))) == value.size else value
    if name == "GATHER":
        return np.take(vals[0], vals[1], axis=int(_option(opt, "Axis", 0)))
    if name in ("MUL", "ADD", "SUB", "FLOOR_DIV"):
        if _option(opt, "FusedActivationFunction", 0) if hasattr(opt, "FusedActivationFunction") else 0:
            return None
        fn = {"MUL": np.multiply, "ADD": np.add, "SUB": np.subtract, "FLOOR_DIV": np.floor_divide}[name]
        return fn(vals[0], vals[1])
    if name == "REDUCE_PROD":
        axes = tuple(int(a) for a in vals[1].reshape(-1))
        return np.prod(vals[0], axis=axes, keepdims=bool(_option(opt, "KeepDims", False)))
    if name in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST"):
        return vals[0].reshape(out_shape)
    return None


# --------------------------------------------------------------------------
# float models: a float graph, quantized by mcuforge's own post-training
# quantization from --calibration (as a float ONNX model is)


def is_float_model(model: _TModel) -> bool:
    """Every activation float32 (no int8 / int16 / uint8 one), every weight float32: a model converted
    without quantization. Dynamic-range models (int8 weights, float activations) are not float models."""
    acts = [t for t in model.tensors if t.data is None and t.type not in ("int32", "int64")]
    weights = [t for t in model.tensors if t.data is not None and t.type not in ("int32", "int64")]
    return bool(acts) and all(t.type == "float32" for t in acts) and all(t.type == "float32" for t in weights)


class _FloatImporter(_Importer):
    """The operators of a float .tflite model as a float Graph: activations
    float32 without quantization, weights and biases float32 in the IR's
    layouts; fused activations become their float clamp range. The
    quantizer (mcuforge.quantize) then computes every scale from the
    calibration data."""

    def _float_io(self) -> set[int]:
        return set()

    def _check_integer_model(self) -> None:
        pass

    def _activation(self, k: int, what: str = "input") -> str:
        if k < 0:
            raise _Unsupported(f"{what} is missing")
        t = self.t[k]
        name = self.names[k]
        if name in self.tensors:
            return name
        if t.data is not None:
            raise _Unsupported(f"{what} '{t.name}' is a constant where an activation is expected")
        if t.is_variable:
            raise _Unsupported(f"{what} '{t.name}' is a variable tensor (stateful models are not supported)")
        if t.type != "float32":
            raise _Unsupported(f"{what} '{t.name}' is {t.type} (a float model's activations are float32)")
        if not t.shape:
            raise _Unsupported(f"{what} '{t.name}' is a scalar")
        shape = (1,) + t.shape if len(t.shape) == 1 else t.shape
        if shape[0] != 1:
            raise _Unsupported(f"{what} '{t.name}' has shape {_shape_str(t.shape)}: batch must be 1")
        self.tensors[name] = Tensor(name, shape, "float32", None, None)
        return name

    def _float_const(self, op: _TOp, j: int, what: str) -> str:
        t = self._const(op, j, what)
        if t.type != "float32":
            raise _Unsupported(f"{what} '{t.name}' is {t.type} in a float model (float32 expected)")
        if t.sparse:
            raise _Unsupported(f"{what} '{t.name}' is sparse (densify it when converting)")
        return self._const_tensor(t, "float32", None, t.data.astype(np.float32))

    def _weight(self, op: _TOp, j: int, axis: int, channels: int) -> str:
        return self._float_const(op, j, "weights")

    def _bias(self, op: _TOp, j: int, channels: int) -> str:
        if j >= len(op.inputs) or op.inputs[j] < 0:
            return ""
        t = self._const(op, j, "bias")
        if t.data.size != channels:
            raise _Unsupported(f"bias '{t.name}' has {t.data.size} values for {channels} output channels")
        name = self._float_const(op, j, "bias")
        tensor = self.tensors[name]
        tensor.data, tensor.shape = tensor.data.reshape(channels), (channels,)
        return name

    def _operand(self, op: _TOp, j: int) -> str:
        if j < len(op.inputs) and op.inputs[j] >= 0 and self.t[op.inputs[j]].data is not None:
            return self._float_const(op, j, "constant operand")
        return self._input(op, j)

    def _same_quant(self, op: _TOp, a: str, b: str) -> None:
        pass

    def _fixed_output(self, op: _TOp, out: str, scale: float, zp: int) -> None:
        pass

    def _fused(self, op: _TOp, out_index: int) -> tuple[float, float]:
        code = _option(op.options, "FusedActivationFunction", 0)
        name, lo, hi = _ACTIVATIONS.get(int(code), (f"activation {code}", None, None))
        if lo is None:
            raise _Unsupported(f"fused activation {name} is not supported (only NONE, RELU, RELU6, RELU_N1_TO_1)")
        return lo, hi

    def _op_RELU(self, op: _TOp) -> None:
        self._unary(op, "clamp", {"act_min": 0.0, "act_max": INF})

    def _op_RELU6(self, op: _TOp) -> None:
        self._unary(op, "clamp", {"act_min": 0.0, "act_max": 6.0})

    def _op_QUANTIZE(self, op: _TOp) -> None:
        raise _Unsupported("QUANTIZE in a float model (a partly quantized model): convert it either fully "
                           "quantized or as a float model")

    def _op_PRELU(self, op: _TOp) -> None:
        x = self._input(op, 0)
        alpha = self._operand(op, 1)
        shape, a_shape = self.tensors[x].shape, self.tensors[alpha].shape
        if len(a_shape) > len(shape) or any(a not in (1, d) for a, d in zip(a_shape[::-1], shape[::-1])):
            raise _Unsupported(f"alpha of shape {_shape_str(a_shape)} does not broadcast to {_shape_str(shape)}")
        self._emit(op, "prelu", [x, alpha], {})
        self._check_shape(op, self.names[op.outputs[0]], shape)


FRONTEND = Frontend(name="tflite", suffixes=(".tflite",), load=load, sniff=sniff)
