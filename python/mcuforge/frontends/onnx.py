"""ONNX frontend: ``.onnx`` file -> float (or pre-quantized) ``ir.Graph``.

What it does, in order:

1. reads and validates the file (missing file, garbage, truncation, checker
   errors all become one ``McuforgeError`` naming the file);
2. checks the graph inputs are static with batch 1; 4-D inputs are NCHW
   (``source_layout = "NCHW"``) unless the model itself transposes them
   NHWC -> NCHW first, as tf2onnx models do (then ``"NHWC"``, taken as is);
3. walks the nodes in order, folding shape arithmetic (Shape, Gather,
   Concat, ... on constants) with NumPy and converting every other node to
   IR ops; NCHW activations become channels-last (NHWC) at the first op that
   cares, and layout changes are inserted only where the bytes differ
   (``transpose`` before a flatten of an H*W > 1 map, for instance);
4. for QDQ models (onnxruntime ``quantize_static`` with QuantFormat.QDQ)
   removes QuantizeLinear/DequantizeLinear and keeps every scale and zero
   point on the tensors: activations per tensor, weights int8 per output
   channel, biases int32 (a tensor read through a second Q/DQ pair with
   other parameters gets a ``clamp(-inf, inf)`` that requantizes it: exact
   up to one step when the second range lies inside the first);
5. collects every node it cannot convert and raises ONE
   ``UnsupportedModelError`` that names all of them.

The result still contains ``batch_norm`` and ``clamp`` nodes; the
``canonicalize`` pass folds and fuses them.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import INF, Graph, McuforgeError, Node, Quant, Tensor, UnsupportedModelError, conv_out_size, unique_name
from ..registry import Frontend
from ..untrusted import (MAX_TENSOR_ELEMENTS, FoldBudget, check_external_data, elements,
                         sanitize_proto_strings, text)
from . import c_identifier

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)

# ONNX ops that are converted to IR ops.
CONVERTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvTranspose", "DequantizeLinear",
    "Div", "Dropout", "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish",
    "Identity", "LeakyRelu", "MatMul", "Max", "MaxPool", "Min", "Mul", "Pad", "PRelu", "QuantizeLinear",
    "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Size", "Slice", "Softmax", "Squeeze", "Sub",
    "Tanh", "Tile", "Transpose", "Unsqueeze",
)
# Ops that are only evaluated at import time, when all their inputs are
# constants (shape arithmetic as written by exporters).
CONSTANT_OPS = (
    "Abs", "Cast", "Ceil", "Constant", "ConstantOfShape", "Equal", "Expand", "Floor",
    "Gather", "Greater", "Less", "Neg", "Not", "Pow", "Range", "Reciprocal", "Sqrt", "Where",
)
SUPPORTED_OPS = tuple(sorted(set(CONVERTED_OPS) | set(CONSTANT_OPS)))


class _Unsupported(Exception):
    """A node the frontend cannot convert; collected, reported all at once."""


@dataclass
class _Value:
    """An ONNX activation as the IR holds it."""

    ir: str  # IR tensor name
    shape: tuple[int, ...]  # the ONNX (channels-first) shape
    nhwc: bool = False  # a 4-D value stored channels-last in the IR


@dataclass
class _QConst:
    """A constant that went through DequantizeLinear: its stored integers."""

    data: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None  # None = per tensor


# --------------------------------------------------------------------------
# public API


def load(path: str | Path, **options: Any) -> Graph:
    """Read an ONNX file into a float (or QDQ pre-quantized) Graph.

    Options: ``name`` (C identifier of the model, default: the file stem),
    ``input_shapes`` ({input name: shape in NCHW}) to pin dynamic inputs.
    """
    path = Path(path)
    if not path.exists():
        raise McuforgeError(f"{path}: no such file")
    if path.is_dir():
        raise McuforgeError(f"{path}: is a directory, not an ONNX model file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise McuforgeError(f"{path}: cannot read ({err.strerror or err})") from None
    name = options.get("name") or c_identifier(path.stem)
    return load_bytes(data, source=str(path), name=name, base_dir=path.parent,
                      input_shapes=options.get("input_shapes"))


def load_bytes(data: bytes, *, source: str, name: str = "model", source_format: str = "onnx",
               input_shapes: dict[str, tuple[int, ...]] | None = None,
               base_dir: Path | None = None) -> Graph:
    """Like `load` for a serialized ModelProto; `source` names it in errors."""
    model = parse_model(data, source, base_dir)
    try:
        with np.errstate(all="ignore"):
            graph = _Importer(model, source, input_shapes or {}).run()
    except McuforgeError:
        raise
    except Exception as err:  # a malformed model that passed the checker
        raise McuforgeError(f"{source}: cannot import the model, it looks malformed ({type(err).__name__}: "
                            f"{_one_line(err)}); if onnxruntime runs it, please report this as a bug") from None
    graph.name = c_identifier(name)
    graph.source = source
    graph.source_hash = hashlib.sha256(data).hexdigest()
    if source_format != "onnx":  # e.g. "torch": the file we read was made by an exporter
        graph.source_format = source_format
    return graph


def parse_model(data: bytes, source: str, base_dir: Path | None = None) -> Any:
    """Deserialize and check a ModelProto; every failure is a McuforgeError."""
    import onnx

    def invalid(why: str) -> McuforgeError:
        why = " ".join(str(why).split())
        if len(why) > 300:
            why = why[:300] + "..."
        return McuforgeError(f"{source}: not a valid ONNX model ({why})")

    if not data:
        raise invalid("the file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # DecodeError and friends
        raise invalid(f"{type(err).__name__}: {err}" if str(err) else type(err).__name__) from None
    sanitize_proto_strings(model)  # names that are not UTF-8 or not printable: made safe text
    if not model.HasField("graph") or not model.graph.output:
        raise invalid("no graph with outputs in the file; it may be truncated or not ONNX at all")
    if base_dir is not None and any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        try:
            from onnx.external_data_helper import load_external_data_for_model

            check_external_data(model, base_dir)  # sizes checked before anything is read
            load_external_data_for_model(model, str(base_dir))
        except McuforgeError as err:
            raise invalid(str(err)) from None
        except Exception as err:
            raise invalid(f"cannot read external weight data: {err}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as err:
        # outputs declared without a shape fail the checker but are harmless:
        # accept the model when shape inference repairs it
        try:
            onnx.checker.check_model(onnx.shape_inference.infer_shapes(model))
        except Exception:
            raise invalid(f"checker: {str(err).strip().splitlines()[0] if str(err).strip() else err}") from None
    return model


# --------------------------------------------------------------------------
# small helpers


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = text(value)
        elif isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        out[a.name] = value
    return out


def _moves_only_unit_axes(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """True when transposing by `perm` keeps the bytes in the same order."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _per_axis(values: np.ndarray, axis: int | None, rank: int) -> np.ndarray:
    """Reshape a per-axis parameter so that it broadcasts along `axis`."""
    values = np.asarray(values)
    if axis is None or values.size == 1:
        return values.reshape(())
    shape = [1] * rank
    shape[axis] = values.size
    return values.reshape(shape)


def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
    info = np.iinfo(zp.dtype)
    q = np.rint(np.asarray(x, np.float64) / _per_axis(scale, axis, x.ndim)) + _per_axis(zp, axis, x.ndim)
    return np.clip(q, info.min, info.max).astype(zp.dtype)


def _dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int | None) -> np.ndarray:
    r = q.ndim
    return ((q.astype(np.float64) - _per_axis(zp, axis, r)) * _per_axis(scale, axis, r)).astype(np.float32)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _shape_str(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# --------------------------------------------------------------------------
# NumPy evaluation of constant sub-graphs


def _slice(data: np.ndarray, starts: Any, ends: Any, axes: Any, steps: Any) -> np.ndarray:
    starts = [int(v) for v in np.atleast_1d(starts)]
    ends = [int(v) for v in np.atleast_1d(ends)]
    axes = list(range(len(starts))) if axes is None else [int(v) % data.ndim for v in np.atleast_1d(axes)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.atleast_1d(steps)]
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)
    return data[tuple(index)]


def _reshape_target(in_shape: tuple[int, ...], shape: Any, allowzero: int) -> tuple[int, ...]:
    shape = [int(v) for v in np.atleast_1d(shape)]
    out = []
    for i, d in enumerate(shape):
        out.append(in_shape[i] if d == 0 and not allowzero else d)
    if out.count(-1) > 1:
        raise _Unsupported(f"Reshape target {shape} has more than one -1")
    total = int(np.prod(in_shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        out[out.index(-1)] = total // known if known else 0
    if int(np.prod(out, dtype=np.int64)) != total:
        raise _Unsupported(f"cannot reshape {_shape_str(in_shape)} to {_shape_str(shape)}")
    return tuple(out)


def _axes_input(attrs: dict[str, Any], ins: list[Any], opset: int, since: int) -> list[int] | None:
    if opset >= since:
        if len(ins) > 1 and ins[1] is not None:
            return [int(a) for a in np.atleast_1d(ins[1])]
        return None
    return list(attrs["axes"]) if "axes" in attrs else None


def _evaluate(op: str, attrs: dict[str, Any], ins: list[Any], opset: int) -> list[np.ndarray]:
    """Evaluate an ONNX op on constant NumPy inputs (absent inputs are None)."""
    import onnx

    x = ins[0] if ins else None
    if op == "Constant":
        for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
            if key in attrs:
                value = attrs[key]
                if key in ("value_float", "value_floats"):
                    value = np.asarray(value, np.float32)
                elif key in ("value_int", "value_ints"):
                    value = np.asarray(value, np.int64)
                return [np.asarray(value)]
        raise _Unsupported("Constant without a numeric value")
    if op in ("Identity", "Dropout"):
        return [x]
    if op == "Cast":
        return [x.astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))]
    if op == "ConstantOfShape":
        value = attrs.get("value", np.zeros(1, np.float32))
        return [np.full(tuple(int(d) for d in x), np.asarray(value).reshape(-1)[0], dtype=np.asarray(value).dtype)]
    if op == "Reshape":
        return [x.reshape(_reshape_target(x.shape, ins[1], attrs.get("allowzero", 0)))]
    if op == "Flatten":
        axis = int(attrs.get("axis", 1))
        axis = axis + x.ndim if axis < 0 else axis
        return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]
    if op == "Squeeze":
        axes = _axes_input(attrs, ins, opset, 13)
        return [np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))]
    if op == "Unsqueeze":
        axes = _axes_input(attrs, ins, opset, 13)
        out = x
        rank = x.ndim + len(axes)
        for a in sorted(a % rank for a in axes):
            out = np.expand_dims(out, a)
        return [out]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(i) if i.ndim == 0 else i for i in ins], axis=attrs["axis"])]
    if op == "Gather":
        return [np.take(x, np.asarray(ins[1], np.int64), axis=attrs.get("axis", 0))]
    if op == "Slice":
        if opset < 10:
            return [_slice(x, attrs["starts"], attrs["ends"], attrs.get("axes"), None)]
        return [_slice(x, ins[1], ins[2], ins[3] if len(ins) > 3 else None, ins[4] if len(ins) > 4 else None)]
    if op == "Transpose":
        return [np.transpose(x, attrs.get("perm"))]
    if op == "Shape":
        shape = np.asarray(x.shape, np.int64)
        return [shape[attrs.get("start", 0):attrs.get("end", None)]]
    if op == "Size":
        return [np.asarray(x.size, np.int64)]
    if op == "Range":
        return [np.arange(ins[0], ins[1], ins[2]).astype(np.asarray(ins[0]).dtype)]
    if op == "Expand":
        return [x * np.ones(tuple(int(d) for d in ins[1]), dtype=x.dtype)]
    if op == "Where":
        return [np.where(ins[0], ins[1], ins[2])]
    if op == "Relu":
        return [np.maximum(x, 0).astype(x.dtype)]
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else attrs.get("min", -np.inf)
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else attrs.get("max", np.inf)
        return [np.clip(x, lo, hi).astype(x.dtype)]
    unary = {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
             "Floor": np.floor, "Ceil": np.ceil, "Not": np.logical_not}
    if op in unary:
        return [np.asarray(unary[op](x)).astype(x.dtype)]
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power,
              "Equal": np.equal, "Less": np.less, "Greater": np.greater}
    if op in binary:
        out = binary[op](ins[0], ins[1])
        return [np.asarray(out) if op in ("Equal", "Less", "Greater") else np.asarray(out).astype(x.dtype)]
    if op == "Div":
        if np.issubdtype(x.dtype, np.integer):
            return [np.trunc(np.true_divide(ins[0], ins[1])).astype(x.dtype)]
        return [np.asarray(np.true_divide(ins[0], ins[1])).astype(x.dtype)]
    if op in ("Max", "Min"):
        fn = np.maximum if op == "Max" else np.minimum
        out = ins[0]
        for other in ins[1:]:
            out = fn(out, other)
        return [np.asarray(out)]
    raise _Unsupported("cannot be evaluated on constants")


def onnx_nearest(in_size: int, out_size: int, scale: float, mode: str, nearest: str) -> tuple[int, ...]:
    """Input index of every output index of ONNX Resize (mode nearest), in float32 as onnxruntime.

    >>> onnx_nearest(3, 6, 2.0, "asymmetric", "floor")
    (0, 0, 1, 1, 2, 2)
    """
    f = np.float32
    out = []
    for x in range(out_size):
        if mode == "half_pixel":
            orig = (f(x) + f(0.5)) / f(scale) - f(0.5)
        elif mode == "pytorch_half_pixel":
            orig = (f(x) + f(0.5)) / f(scale) - f(0.5) if out_size > 1 else f(0)
        elif mode == "align_corners":
            orig = f(0) if out_size == 1 else f(x) * f(in_size - 1) / f(out_size - 1)
        elif mode == "asymmetric":
            orig = f(x) / f(scale)
        elif mode == "tf_half_pixel_for_nn":
            orig = (f(x) + f(0.5)) / f(scale)
        else:
            raise _Unsupported(f"coordinate_transformation_mode '{mode}' is not supported")
        o = float(orig)
        if nearest == "floor":
            i = math.floor(o)
        elif nearest == "ceil":
            i = math.ceil(o)
        elif nearest == "round_prefer_ceil":
            i = math.floor(o + 0.5)
        elif nearest == "round_prefer_floor":
            i = math.ceil(o - 0.5)
        else:
            raise _Unsupported(f"nearest_mode '{nearest}' is not supported")
        out.append(min(max(int(i), 0), in_size - 1))
    return tuple(out)


# --------------------------------------------------------------------------
# the importer


class _Importer:
    def __init__(self, model: Any, source: str, input_shapes: dict[str, tuple[int, ...]]):
        self.model = model
        self.onnx_graph = model.graph
        self.source = source
        self.input_shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.consts: dict[str, np.ndarray] = {}
        self.qconsts: dict[str, _QConst] = {}
        self.values: dict[str, _Value] = {}
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.node_names: set[str] = set()
        self.producer: dict[str, Node] = {}  # IR tensor -> IR node
        self.quant: dict[str, Quant] = {}  # IR tensor -> activation Quant from a Q/DQ pair
        self.derived: dict[str, str] = {}  # IR tensor made by a layout change -> base IR tensor
        self.relayouts: dict[tuple[str, str], str] = {}
        self.q_outputs: dict[str, tuple[str, Quant]] = {}  # QuantizeLinear output -> (input, quant)
        self.unknown: set[str] = set()  # ONNX names downstream of a failed node
        self.unsupported_ops: list[str] = []
        self.node_problems: list[str] = []
        self.qdq = False
        self.onnx_consumers: dict[str, list[Any]] = {}
        for n in self.onnx_graph.node:
            for i in n.input:
                if i:
                    self.onnx_consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in self.onnx_graph.output}
        self.source_layout = "NCHW"
        self.inferred: dict[str, tuple[int, ...]] | None = None  # shapes from ONNX shape inference
        self.fold_budget = FoldBudget()

    # ---- driver --------------------------------------------------------
    def run(self) -> Graph:
        from onnx import numpy_helper

        for init in self.onnx_graph.initializer:
            try:
                self.consts[init.name] = numpy_helper.to_array(init)
            except Exception as err:
                raise McuforgeError(f"{self.source}: not a valid ONNX model (initializer '{init.name}' "
                                    f"is corrupt: {_one_line(err)})") from None
        inputs = self._inputs()
        for index, node in enumerate(self.onnx_graph.node):
            self._convert(index, node)
        outputs = self._outputs()
        self._raise_problems()
        if not self.nodes:
            raise McuforgeError(f"{self.source}: the model has no layers to compile")
        self._remove_dead_nodes(outputs)
        self._apply_quant()
        graph = Graph(name="model", tensors=self.tensors, nodes=self.nodes, inputs=inputs, outputs=outputs,
                      source_format="onnx-qdq" if self.qdq else "onnx", source_layout=self.source_layout)
        graph.toposort()
        graph.remove_unused()
        return graph

    def _remove_dead_nodes(self, outputs: list[str]) -> None:
        while True:
            used = set(outputs)
            for n in self.nodes:
                used.update(n.inputs)
            keep = [n for n in self.nodes if any(o in used for o in n.outputs)]
            if len(keep) == len(self.nodes):
                return
            self.nodes = keep

    def _inputs(self) -> list[str]:
        import onnx

        initializers = {i.name for i in self.onnx_graph.initializer}
        names: list[str] = []
        layouts: list[str] = []
        for inp in self.onnx_graph.input:
            if inp.name in initializers:
                continue
            ttype = inp.type.tensor_type
            if not inp.type.HasField("tensor_type"):
                raise McuforgeError(f"{self.source}: input '{inp.name}' is not a tensor; "
                                    f"mcuforge compiles models with tensor inputs only")
            if ttype.elem_type != onnx.TensorProto.FLOAT:
                dtype = onnx.TensorProto.DataType.Name(ttype.elem_type).lower()
                raise McuforgeError(f"{self.source}: input '{inp.name}' has type {dtype}; mcuforge needs "
                                    f"float32 model inputs (quantization is applied by the compiler or by "
                                    f"QuantizeLinear nodes inside the model)")
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in ttype.shape.dim]
            if inp.name in self.input_shapes:
                fixed = self.input_shapes[inp.name]
                if len(fixed) != len(dims) or any(isinstance(d, int) and d > 0 and d != f
                                                  for d, f in zip(dims, fixed)):
                    raise McuforgeError(f"{self.source}: input_shapes['{inp.name}'] = {_shape_str(fixed)} "
                                        f"does not match the model's input shape {_shape_str(dims)}")
                dims = list(fixed)
            if not ttype.HasField("shape") or any(not isinstance(d, int) or d <= 0 for d in dims):
                shown = _shape_str(dims) if ttype.HasField("shape") else "of unknown rank"
                raise McuforgeError(
                    f"{self.source}: input '{inp.name}' has a dynamic shape {shown}; mcuforge needs static "
                    f"shapes with batch 1: export the model with fixed input sizes (torch.onnx.export "
                    f"without dynamic_axes/dynamic_shapes) or pin them with input_shapes")
            if len(dims) < 2 or dims[0] != 1:
                what = "no batch dimension" if len(dims) < 2 else f"batch size {dims[0]}"
                raise McuforgeError(
                    f"{self.source}: input '{inp.name}' has shape {_shape_str(dims)} ({what}); mcuforge "
                    f"compiles batch-1 models: export with an input of batch size 1, e.g. {_shape_str([1] + dims[1:])}")
            shape = tuple(dims)
            if len(shape) == 4:
                layouts.append("NHWC" if self._channels_last_input(inp.name) else "NCHW")
            nhwc = len(shape) == 4 and layouts[-1] == "NCHW"
            self._new_tensor(inp.name, tuple(shape[p] for p in NCHW_TO_NHWC) if nhwc else shape)
            self.values[inp.name] = _Value(inp.name, shape, nhwc)
            names.append(inp.name)
        if not names:
            raise McuforgeError(f"{self.source}: the model has no inputs (only constants); nothing to compile")
        if layouts and all(layout == "NHWC" for layout in layouts):
            self.source_layout = "NHWC"
        return names

    def _leaf_consumers(self, name: str) -> list[Any]:
        """Consumers of `name`, looking through Q/DQ pairs and identities."""
        out = []
        for n in self.onnx_consumers.get(name, []):
            if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity", "Dropout"):
                out.extend(self._leaf_consumers(n.output[0]))
            else:
                out.append(n)
        return out

    def _channels_last_input(self, name: str) -> bool:
        """A 4-D input that the model itself transposes NHWC -> NCHW (as
        tf2onnx writes them): the IR takes it as it is."""
        users = self._leaf_consumers(name)
        return bool(users) and all(
            n.op_type == "Transpose" and tuple(_attrs(n).get("perm", ())) == NHWC_TO_NCHW for n in users)

    def _outputs(self) -> list[str]:
        outputs = []
        for out in self.onnx_graph.output:
            name = out.name
            if name in self.unknown:
                continue
            if name in self.consts or name not in self.values:
                self.node_problems.append(f"graph output '{name}' is a constant or has no producer")
                continue
            v = self.values[name]
            # 4-D outputs are channels-last; a channels-last model's are already
            ir = self._nhwc(name) if len(v.shape) == 4 and self.source_layout == "NCHW" else self._raw(name)
            graph_inputs = {i.name for i in self.onnx_graph.input}
            if ir in graph_inputs or ir in outputs:
                # an output that is an input (or another output): give it its own copy
                copy = unique_name(self.tensors, name)
                self._emit_ir("reshape", f"{name}/copy", [ir], copy, self.tensors[ir].shape,
                              {"shape": self.tensors[ir].shape})
                self.derived[copy] = self.derived.get(ir, ir)
                ir = copy
            if ir != name and name not in self.tensors:
                self._rename(ir, name)
                ir = name
            outputs.append(ir)
        return outputs

    def _raise_problems(self) -> None:
        parts = []
        if self.unsupported_ops:
            parts.append("unsupported operators: " + ", ".join(self.unsupported_ops))
        if self.node_problems:
            parts.append("nodes that cannot be converted: " + "; ".join(self.node_problems))
        if parts:
            count = len(self.unsupported_ops) + len(self.node_problems)
            raise UnsupportedModelError(
                f"{self.source}: {count} problem(s): {' | '.join(parts)}. What to do: replace these layers with "
                f"supported ones or move them out of the exported model (supported ONNX operators: "
                f"{', '.join(sorted(CONVERTED_OPS))}; constant shape arithmetic such as Gather, Slice, Cast, "
                f"Mul is evaluated at import)")

    # ---- per node ------------------------------------------------------
    def _convert(self, index: int, node: Any) -> None:
        op = node.op_type
        name = node.name or f"{op}_{index}"
        label = f"{name} ({op})"
        outs = [o for o in node.output if o]
        if node.domain not in ("", "ai.onnx") or (op not in CONVERTED_OPS and op not in CONSTANT_OPS):
            domain = f" from domain '{node.domain}'" if node.domain not in ("", "ai.onnx") else ""
            self.unsupported_ops.append(f"{label}{domain}")
            self._give_up(outs)
            return
        ins = list(node.input)
        if any(i in self.unknown for i in ins if i):
            self.unknown.update(outs)
            return
        try:
            attrs = _attrs(node)
            if op not in ("QuantizeLinear", "DequantizeLinear", "Shape", "Size") and all(
                    (not i) or i in self.consts for i in ins):
                self.fold_budget.take(op, attrs, [self.consts.get(i) if i else None for i in ins])
                values = _evaluate(op, attrs, [self.consts.get(i) if i else None for i in ins], self.opset)
                for o, v in zip(node.output, values):
                    if o:
                        self.consts[o] = np.asarray(v)
                return
            if op in CONSTANT_OPS:
                raise _Unsupported("supported only on constant inputs (shape arithmetic); here it "
                                   "computes on activations")
            missing = [i for i in ins if i and i not in self.consts and i not in self.values
                       and i not in self.q_outputs]
            if missing:
                raise _Unsupported(f"input '{missing[0]}' is not produced by any earlier node")
            getattr(self, "_op_" + op)(node, name, attrs)
        except _Unsupported as err:
            self.node_problems.append(f"{label}: {err}")
            self._give_up(outs)
        except McuforgeError:
            raise
        except Exception as err:  # malformed attributes etc.: still the model's fault
            self.node_problems.append(f"{label}: cannot convert ({type(err).__name__}: {err})")
            self._give_up(outs)

    def _give_up(self, outs: list[str]) -> None:
        """After a node failed: stand-in values with the shapes ONNX shape
        inference gives, so that the nodes after it are still checked (and
        their problems reported in the same error)."""
        if self.inferred is None:
            import onnx

            self.inferred = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model).graph
                for vi in list(inferred.value_info) + list(inferred.output):
                    dims = vi.type.tensor_type.shape.dim
                    if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape") and all(
                            d.HasField("dim_value") and d.dim_value > 0 for d in dims):
                        self.inferred[vi.name] = tuple(d.dim_value for d in dims)
            except Exception:
                pass
        for out in outs:
            shape = self.inferred.get(out)
            if shape is None or elements(shape) > MAX_TENSOR_ELEMENTS:
                self.unknown.add(out)
                continue
            nhwc = len(shape) == 4 and self.source_layout == "NCHW"
            ir = self._new_tensor(out, tuple(shape[p] for p in NCHW_TO_NHWC) if nhwc else shape)
            self.values[out] = _Value(ir, shape, nhwc)

    # ---- IR building blocks ------------------------------------------------
    def _new_tensor(self, name: str, shape: tuple[int, ...], dtype: str = "float32",
                    data: np.ndarray | None = None, quant: Quant | None = None) -> str:
        name = unique_name(self.tensors, name)
        self.tensors[name] = Tensor(name, shape, dtype, data, quant)
        return name

    def _node_name(self, base: str) -> str:
        name = unique_name(self.node_names, base)
        self.node_names.add(name)
        return name

    def _emit_ir(self, op: str, name: str, inputs: list[str], out: str, shape: tuple[int, ...],
                 attrs: dict[str, Any]) -> str:
        """Add an IR node writing a new tensor named like `out`; return the tensor name."""
        out = self._new_tensor(out, shape)
        node = Node(self._node_name(name), op, list(inputs), [out], dict(attrs))
        self.nodes.append(node)
        self.producer[out] = node
        return out

    def _emit(self, op: str, name: str, inputs: list[str], out: str, onnx_shape: tuple[int, ...],
              nhwc: bool, attrs: dict[str, Any]) -> None:
        """Add the IR node of an ONNX node output `out`."""
        onnx_shape = tuple(int(d) for d in onnx_shape)
        ir_shape = tuple(onnx_shape[p] for p in NCHW_TO_NHWC) if nhwc else onnx_shape
        ir = self._emit_ir(op, name, inputs, out, ir_shape, attrs)
        self.values[out] = _Value(ir, onnx_shape, nhwc)

    def _alias(self, out: str, src: str) -> None:
        if src in self.consts:
            self.consts[out] = self.consts[src]
            if src in self.qconsts:
                self.qconsts[out] = self.qconsts[src]
        else:
            self.values[out] = self.values[src]

    def _value(self, name: str) -> _Value:
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            raise _Unsupported(f"input '{name}' is a constant where an activation is expected")
        raise _Unsupported(f"input '{name}' is not available")

    def _const(self, name: str, what: str) -> np.ndarray:
        if name in self.consts:
            return self.consts[name]
        raise _Unsupported(f"the {what} ('{name}') must be a constant (an initializer)")

    def _relayout(self, v: _Value, perm: tuple[int, ...], tag: str) -> str:
        key = (v.ir, tag)
        if key in self.relayouts:
            return self.relayouts[key]
        in_shape = self.tensors[v.ir].shape
        out_shape = tuple(in_shape[p] for p in perm)
        if _moves_only_unit_axes(in_shape, perm):
            op, attrs = "reshape", {"shape": out_shape}
        else:
            op, attrs = "transpose", {"perm": perm}
        out = self._emit_ir(op, f"{v.ir}/to_{tag}", [v.ir], f"{v.ir}_{tag}", out_shape, attrs)
        self.derived[out] = self.derived.get(v.ir, v.ir)
        self.relayouts[key] = out
        return out

    def _nhwc(self, name: str) -> str:
        """IR tensor of a 4-D value in channels-last order."""
        v = self._value(name)
        if len(v.shape) != 4:
            raise _Unsupported(f"expects a 4-D (N, C, H, W) input, '{name}' has shape {_shape_str(v.shape)}")
        return v.ir if v.nhwc else self._relayout(v, NCHW_TO_NHWC, "nhwc")

    def _raw(self, name: str) -> str:
        """IR tensor of a value in the ONNX model's own axis order."""
        v = self._value(name)
        return self._relayout(v, NHWC_TO_NCHW, "nchw") if v.nhwc else v.ir

    def _rename(self, old: str, new: str) -> None:
        t = self.tensors.pop(old)
        t.name = new
        self.tensors[new] = t
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
            n.outputs = [new if o == old else o for o in n.outputs]
        if old in self.quant:
            self.quant[new] = self.quant.pop(old)
        for k, base in list(self.derived.items()):
            if base == old:
                self.derived[k] = new
        if old in self.derived:
            self.derived[new] = self.derived.pop(old)
        if old in self.producer:
            self.producer[new] = self.producer.pop(old)
        for v in self.values.values():
            if v.ir == old:
                v.ir = new

    def _apply_quant(self) -> None:
        for t in self.tensors.values():
            if t.is_const or t.quant is not None:
                continue
            q = self.quant.get(t.name) or self.quant.get(self.derived.get(t.name, ""))
            if q is not None:
                t.quant = Quant(q.scale.copy(), q.zero_point.copy(), q.axis)

    # ---- weights -------------------------------------------------------
    def _weight(self, base: str, onnx_name: str, perm: tuple[int, ...], out_axis: int,
                factor: float = 1.0) -> Tensor:
        """A weight constant transposed by `perm` into the IR layout.

        A DequantizeLinear'd int8 weight stays int8 with a per-channel Quant
        along `out_axis` (per-tensor scales are repeated per channel)."""
        value = np.transpose(np.asarray(self._const(onnx_name, "weight"), np.float32), perm)
        if not np.all(np.isfinite(value)):
            raise _Unsupported(f"weight '{onnx_name}' contains NaN or infinite values")
        q = self.qconsts.get(onnx_name)
        if q is not None:
            if q.data.dtype == np.uint8:
                raise McuforgeError(
                    f"{self.source}: weight '{onnx_name}' is quantized to uint8; mcuforge needs int8 weights: "
                    f"quantize with onnxruntime quantize_static(..., weight_type=QuantType.QInt8)")
            mapped_axis = None if q.axis is None or q.scale.size == 1 else perm.index(q.axis)
            if (q.data.dtype == np.int8 and not np.any(q.zero_point) and mapped_axis in (None, out_axis)):
                data = np.transpose(q.data, perm).astype(np.int8)
                channels = data.shape[out_axis]
                scale = np.broadcast_to(np.asarray(q.scale, np.float64).reshape(-1), (channels,)) * factor
                name = unique_name(self.tensors, base)
                t = Tensor(name, data.shape, "int8", np.ascontiguousarray(data),
                           Quant(scale.copy(), np.zeros(channels, np.int64), out_axis))
                self.tensors[name] = t
                return t
        name = self._new_tensor(base, value.shape, "float32", np.ascontiguousarray(value * np.float32(factor)))
        return self.tensors[name]

    def _bias(self, base: str, onnx_name: str, channels: int, quantized: bool, factor: float = 1.0) -> str:
        value = np.asarray(self._const(onnx_name, "bias"), np.float32)
        if not np.all(np.isfinite(value)):
            raise _Unsupported(f"bias '{onnx_name}' contains NaN or infinite values")
        if value.size not in (1, channels):
            raise _Unsupported(f"bias '{onnx_name}' of shape {_shape_str(value.shape)} does not match "
                               f"{channels} output channels")
        value = np.broadcast_to(value.reshape(-1), (channels,)) * np.float32(factor)
        q = self.qconsts.get(onnx_name)
        if (quantized and q is not None and q.data.dtype == np.int32 and factor == 1.0
                and not np.any(q.zero_point) and q.data.size == channels):
            scale = np.broadcast_to(np.asarray(q.scale, np.float64).reshape(-1), (channels,)).copy()
            return self._new_tensor(base, (channels,), "int32", q.data.reshape(-1).astype(np.int32),
                                    Quant(scale, np.zeros(channels, np.int64), 0))
        return self._new_tensor(base, (channels,), "float32", np.ascontiguousarray(value, np.float32))

    # ---- op converters (one per ONNX op) ------------------------------------
    def _conv_pads(self, attrs: dict[str, Any], size: tuple[int, int], kernel: tuple[int, int],
                   strides: tuple[int, int], dilations: tuple[int, int]) -> tuple[int, int, int, int]:
        auto = attrs.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4:
                raise _Unsupported(f"pads {pads} are not 2-D pads")
            return tuple(int(p) for p in pads)  # type: ignore[return-value]
        if auto == "VALID":
            return (0, 0, 0, 0)
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            raise _Unsupported(f"auto_pad '{auto}' is not supported")
        before, after = [], []
        for n, k, s, d in zip(size, kernel, strides, dilations):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            small = total // 2
            if auto == "SAME_UPPER":
                before.append(small), after.append(total - small)
            else:
                before.append(total - small), after.append(small)
        return (before[0], before[1], after[0], after[1])

    def _op_Conv(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x, w_name = node.input[0], node.input[1]
        b_name = node.input[2] if len(node.input) > 2 else ""
        v = self._value(x)
        if len(v.shape) == 3:
            return self._conv1d(node, name, attrs)
        if len(v.shape) != 4:
            raise _Unsupported(f"only 1-D and 2-D convolution is supported (input shape {_shape_str(v.shape)})")
        w = self._const(w_name, "weight")
        if w.ndim != 4:
            raise _Unsupported(f"weight of shape {_shape_str(w.shape)} is not a 2-D convolution kernel")
        out_ch, in_per_group, kh, kw = (int(d) for d in w.shape)
        group = int(attrs.get("group", 1))
        channels = v.shape[1]
        strides = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        dilations = tuple(int(d) for d in attrs.get("dilations", [1, 1]))
        top, left, bottom, right = self._conv_pads(attrs, v.shape[2:], (kh, kw), strides, dilations)
        oh = conv_out_size(v.shape[2], kh, strides[0], dilations[0], top, bottom)
        ow = conv_out_size(v.shape[3], kw, strides[1], dilations[1], left, right)
        if oh <= 0 or ow <= 0:
            raise _Unsupported(f"the output would be empty ({oh}x{ow})")
        attrs_ir: dict[str, Any] = {"strides": strides, "dilations": dilations,
                                    "pads": (top, left, bottom, right), "act_min": -INF, "act_max": INF}
        if group == 1 and in_per_group == channels:
            op, perm, axis = "conv2d", (0, 2, 3, 1), 0
        elif group == channels and in_per_group == 1 and out_ch % channels == 0:
            op, perm, axis = "depthwise_conv2d", (1, 2, 3, 0), 3
            attrs_ir["depth_multiplier"] = out_ch // channels
        else:
            raise _Unsupported(f"grouped convolution (group={group}, {channels} input channels) is not supported:"
                               f" use group=1 or a depthwise convolution (group = input channels)")
        weight = self._weight(f"{name}.weight", w_name, perm, axis)
        bias = self._bias(f"{name}.bias", b_name, out_ch, weight.dtype == "int8") if b_name else ""
        self._emit(op, name, [self._nhwc(x), weight.name, bias], node.output[0],
                   (1, out_ch, oh, ow), True, attrs_ir)

    def _op_ConvTranspose(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x, w_name = node.input[0], node.input[1]
        b_name = node.input[2] if len(node.input) > 2 else ""
        v = self._value(x)
        w = self._const(w_name, "weight")
        if len(v.shape) != 4 or w.ndim != 4:
            raise _Unsupported("only 2-D transposed convolution is supported")
        if int(attrs.get("group", 1)) != 1 or any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
            raise _Unsupported("grouped or dilated transposed convolution is not supported")
        if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "") or "output_shape" in attrs:
            raise _Unsupported("auto_pad / output_shape are not supported: give explicit pads")
        in_ch, out_ch, kh, kw = (int(d) for d in w.shape)
        if in_ch != v.shape[1]:
            raise _Unsupported(f"weight of shape {_shape_str(w.shape)} does not fit {v.shape[1]} input channels")
        strides = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        top, left, bottom, right = (int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
        extra = [int(p) for p in attrs.get("output_padding", [0, 0])]
        oh = (v.shape[2] - 1) * strides[0] + kh - top - bottom + extra[0]
        ow = (v.shape[3] - 1) * strides[1] + kw - left - right + extra[1]
        if oh <= 0 or ow <= 0:
            raise _Unsupported(f"the output would be empty ({oh}x{ow})")
        weight = self._weight(f"{name}.weight", w_name, (1, 2, 3, 0), 0)
        bias = self._bias(f"{name}.bias", b_name, out_ch, weight.dtype == "int8") if b_name else ""
        self._emit("transpose_conv", name, [self._nhwc(x), weight.name, bias], node.output[0], (1, out_ch, oh, ow),
                   True, {"strides": strides, "pads": (top, left, bottom, right), "out_hw": (oh, ow),
                          "act_min": -INF, "act_max": INF})

    def _op_Slice(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        rank = len(v.shape)
        if self.opset < 10:
            starts, ends = attrs["starts"], attrs["ends"]
            axes, steps = attrs.get("axes", list(range(len(starts)))), [1] * len(starts)
        else:
            get = lambda j, what: (np.asarray(self._const(node.input[j], what)).reshape(-1).tolist()  # noqa: E731
                                   if len(node.input) > j and node.input[j] else None)
            starts, ends = get(1, "starts"), get(2, "ends")
            axes = get(3, "axes") or list(range(len(starts)))
            steps = get(4, "steps") or [1] * len(starts)
        begin, stride, count = [0] * rank, [1] * rank, list(v.shape)
        for axis, start, end, step in zip(axes, starts, ends, steps):
            axis, dim, step = int(axis) % rank, v.shape[int(axis) % rank], int(step)
            if step == 0:
                raise _Unsupported("a step is 0")
            start, end = int(start) + (dim if start < 0 else 0), int(end) + (dim if end < 0 else 0)
            if step > 0:
                start, end = min(max(start, 0), dim), min(max(end, 0), dim)
                n = max(0, -(-(end - start) // step))
            else:
                start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
                n = max(0, -(-(start - end) // -step))
            if n == 0:
                raise _Unsupported(f"the slice of axis {axis} is empty")
            begin[axis], stride[axis], count[axis] = start, step, n
        order = NCHW_TO_NHWC if v.nhwc else tuple(range(rank))
        attrs_ir = {"begin": tuple(begin[a] for a in order), "strides": tuple(stride[a] for a in order),
                    "counts": tuple(count[a] for a in order)}
        self._emit("strided_slice", name, [v.ir], node.output[0], tuple(count), v.nhwc, attrs_ir)

    def _op_Resize(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        if attrs.get("mode", "nearest") != "nearest":
            raise _Unsupported(f"mode '{attrs.get('mode')}' is not supported (nearest only)")
        if len(v.shape) != 4:
            raise _Unsupported(f"resize of a {len(v.shape)}-D tensor (4-D only)")
        get = lambda j: (np.asarray(self._const(node.input[j], "scales/sizes"), np.float64).reshape(-1)  # noqa: E731
                         if len(node.input) > j and node.input[j] and np.asarray(self.consts.get(node.input[j], [])).size
                         else None)
        scales, sizes = get(2), get(3)
        if sizes is not None:
            out = [int(d) for d in sizes]
            scales = np.array(out, np.float64) / np.array(v.shape, np.float64)
        elif scales is not None:
            out = [int(math.floor(d * s)) for d, s in zip(v.shape, scales)]
        else:
            raise _Unsupported("neither scales nor sizes are given")
        if out[:2] != list(v.shape[:2]):
            raise _Unsupported("only the spatial axes may be resized")
        mode = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        rows, cols = (onnx_nearest(v.shape[a], out[a], float(scales[a]), mode, nearest) for a in (2, 3))
        self._emit("resize_nearest", name, [self._nhwc(node.input[0])], node.output[0], tuple(out), True,
                   {"row_index": rows, "col_index": cols})

    def _fully_connected(self, node: Any, name: str, x: str, w_name: str, perm: tuple[int, int],
                         b_name: str, alpha: float, beta: float) -> None:
        v = self._value(x)
        w = self._const(w_name, "weight")
        if w.ndim != 2:
            raise _Unsupported(f"weight of shape {_shape_str(w.shape)} is not a matrix")
        weight = self._weight(f"{name}.weight", w_name, perm, 0, factor=alpha)
        n_out, k = weight.shape
        if v.shape[-1] != k:
            raise _Unsupported(f"input shape {_shape_str(v.shape)} does not match weight {_shape_str(w.shape)}")
        if v.shape[0] != 1:
            raise _Unsupported(f"input shape {_shape_str(v.shape)} has batch size {v.shape[0]}")
        bias = ""
        if b_name and beta != 0.0:
            bias = self._bias(f"{name}.bias", b_name, n_out, weight.dtype == "int8", factor=beta)
        self._emit("fully_connected", name, [self._raw(x), weight.name, bias], node.output[0],
                   v.shape[:-1] + (n_out,), False, {"act_min": -INF, "act_max": INF})

    def _op_Gemm(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        if attrs.get("transA", 0):
            raise _Unsupported("transA=1 is not supported")
        if len(self._value(node.input[0]).shape) != 2:
            raise _Unsupported("Gemm input must be 2-D")
        perm = (0, 1) if attrs.get("transB", 0) else (1, 0)
        b_name = node.input[2] if len(node.input) > 2 else ""
        self._fully_connected(node, name, node.input[0], node.input[1], perm, b_name,
                              float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0)))

    def _op_MatMul(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        a, b = node.input[0], node.input[1]
        if a in self.consts and b in self.values:
            raise _Unsupported("constant @ activation is not supported (the weight must be the second input)")
        if b not in self.consts:
            raise _Unsupported("MatMul of two activations is not supported (the second input must be a constant)")
        self._fully_connected(node, name, a, b, (1, 0), "", 1.0, 1.0)

    def _op_Add(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        a, b = node.input[0], node.input[1]
        if a in self.consts or b in self.consts:
            const_name, act = (a, b) if a in self.consts else (b, a)
            quantized = self._value(act).ir in self.quant  # a QDQ model quantizes the layer output first
            if np.asarray(self.consts[const_name]).size == 1 and (quantized or not self._bias_foldable(act)):
                self._binary(node, name, "add")  # x + c: an elementwise add of one constant
            else:
                self._fold_bias_add(node, name, act, const_name)
            return
        va, vb = self._value(a), self._value(b)
        if va.shape != vb.shape:
            raise _Unsupported(f"broadcasting add of shapes {_shape_str(va.shape)} and {_shape_str(vb.shape)} is "
                               f"not supported (both inputs must have the same shape)")
        nhwc = len(va.shape) == 4 and (va.nhwc or vb.nhwc)
        ins = [self._nhwc(a), self._nhwc(b)] if nhwc else [self._raw(a), self._raw(b)]
        self._emit("add", name, ins, node.output[0], va.shape, nhwc, {"act_min": -INF, "act_max": INF})

    def _elementwise(self, node: Any, name: str, op: str, attrs: dict[str, Any]) -> None:
        """A unary elementwise op: the IR keeps the input's layout."""
        v = self._value(node.input[0])
        out = self._emit_ir(op, name, [v.ir], node.output[0], self.tensors[v.ir].shape, attrs)
        self.values[node.output[0]] = _Value(out, v.shape, v.nhwc)

    def _op_HardSwish(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._elementwise(node, name, "hard_swish", {})

    def _op_HardSigmoid(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._elementwise(node, name, "hard_sigmoid", {"alpha": float(attrs.get("alpha", 0.2)),
                                                       "beta": float(attrs.get("beta", 0.5))})

    def _op_Sigmoid(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._elementwise(node, name, "logistic", {})

    def _op_Tanh(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._elementwise(node, name, "tanh", {})

    def _op_LeakyRelu(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._elementwise(node, name, "leaky_relu", {"alpha": float(attrs.get("alpha", 0.01))})

    def _binary(self, node: Any, name: str, op: str, inputs: list[str] | None = None) -> None:
        """Mul / Sub / Max / Min of two activations (NumPy broadcasting, a 4-D
        result channels-last), or of an activation and a single constant."""
        inputs = list(node.input) if inputs is None else inputs
        if len(inputs) != 2:
            raise _Unsupported(f"{len(inputs)} inputs (exactly 2 are supported)")
        a, b = inputs
        if a in self.consts or b in self.consts:
            const_name, act = (a, b) if a in self.consts else (b, a)
            const = np.asarray(self.consts[const_name], np.float32)
            if const.size != 1:
                raise _Unsupported(f"constant operand '{const_name}' of shape {_shape_str(const.shape)}: only a "
                                   f"single value is supported")
            if not np.all(np.isfinite(const)):
                raise _Unsupported(f"constant operand '{const_name}' is not finite")
            v = self._value(act)
            c = self._new_tensor(f"{name}.constant", (1,), "float32", const.reshape(1))
            ins = [c, v.ir] if a == const_name else [v.ir, c]
            out = self._emit_ir(op, name, ins, node.output[0], self.tensors[v.ir].shape,
                                {"act_min": -INF, "act_max": INF})
            self.values[node.output[0]] = _Value(out, v.shape, v.nhwc)
            return
        va, vb = self._value(a), self._value(b)
        try:
            shape = tuple(int(d) for d in np.broadcast_shapes(va.shape, vb.shape))
        except ValueError:
            raise _Unsupported(f"shapes {_shape_str(va.shape)} and {_shape_str(vb.shape)} do not broadcast") from None
        if len(shape) == 4:
            if len(va.shape) != 4 or len(vb.shape) != 4:
                raise _Unsupported(f"broadcasting {_shape_str(va.shape)} with {_shape_str(vb.shape)}: both "
                                   f"inputs must be 4-D")
            ins, nhwc = [self._nhwc(a), self._nhwc(b)], True
        else:
            ins, nhwc = [self._raw(a), self._raw(b)], False
        self._emit(op, name, ins, node.output[0], shape, nhwc, {"act_min": -INF, "act_max": INF})

    def _op_Mul(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._binary(node, name, "mul")

    def _op_Sub(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._binary(node, name, "sub")

    def _op_Div(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        divisor = node.input[1]
        if divisor not in self.consts or np.asarray(self.consts[divisor]).size != 1 or node.input[0] in self.consts:
            raise _Unsupported("only an activation divided by a single constant is supported")
        c = float(np.asarray(self.consts[divisor], np.float64).reshape(-1)[0])
        if c == 0 or not math.isfinite(c):
            raise _Unsupported(f"division by {c}")
        reciprocal = f"{name}.reciprocal"
        self.consts[reciprocal] = np.asarray([1.0 / c], np.float32)
        self._binary(node, name, "mul", [node.input[0], reciprocal])  # x / c = x * (1 / c)

    def _op_Max(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._binary(node, name, "maximum")

    def _op_Min(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._binary(node, name, "minimum")

    def _effective_consumers(self, name: str) -> int:
        count = 1 if name in self.graph_outputs else 0
        for n in self.onnx_consumers.get(name, []):
            if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Identity", "Dropout"):
                count += sum(self._effective_consumers(o) for o in n.output[:1])
            else:
                count += 1
        return count

    def _bias_foldable(self, act: str) -> bool:
        """`act` is the output of a Conv/Gemm/MatMul with no other use (a constant added folds into its bias)."""
        prod = self.producer.get(self._value(act).ir)
        return (prod is not None and prod.op in ("fully_connected", "conv2d", "depthwise_conv2d")
                and self._effective_consumers(act) == 1)

    def _fold_bias_add(self, node: Any, name: str, act: str, const_name: str) -> None:
        """Add(layer output, constant) where the constant is a per-channel bias."""
        v = self._value(act)
        const = np.asarray(self.consts[const_name], np.float32)
        prod = self.producer.get(v.ir)
        if not self._bias_foldable(act):
            raise _Unsupported("adding a constant is supported only as the bias of the directly preceding "
                               "Conv/Gemm/MatMul (whose output has no other use)")
        channels = self.tensors[prod.inputs[1]].shape[0 if prod.op != "depthwise_conv2d" else 3]
        if prod.op == "fully_connected":
            fits = const.size == 1 or (const.size == channels and const.shape[-1] == channels)
        else:  # an NCHW constant: (C, 1, 1) or (1, C, 1, 1)
            fits = const.size == 1 or (const.size == channels and const.ndim >= 3 and const.shape[-3] == channels)
        if not fits:
            raise _Unsupported(f"constant of shape {_shape_str(const.shape)} is not a per-channel bias")
        bias = np.broadcast_to(const.reshape(-1), (channels,)).astype(np.float32)
        if prod.inputs[2]:
            old = self.tensors[prod.inputs[2]]
            if old.dtype != "float32":
                raise _Unsupported("cannot add a float constant to a quantized bias")
            bias = bias + old.data
        prod.inputs[2] = self._new_tensor(f"{prod.name}.bias", (channels,), "float32", bias)
        # the layer now writes the Add's output
        old_out = prod.outputs[0]
        new_out = self._new_tensor(node.output[0], self.tensors[old_out].shape)
        prod.outputs[0] = new_out
        del self.producer[old_out]
        self.producer[new_out] = prod
        del self.tensors[old_out]
        self.values[node.output[0]] = _Value(new_out, v.shape, v.nhwc)

    def _clamp(self, node: Any, name: str, lo: float, hi: float) -> None:
        v = self._value(node.input[0])
        ir_shape = self.tensors[v.ir].shape
        out = self._emit_ir("clamp", name, [v.ir], node.output[0], ir_shape,
                            {"act_min": float(lo), "act_max": float(hi)})
        self.values[node.output[0]] = _Value(out, v.shape, v.nhwc)

    def _op_Relu(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._clamp(node, name, 0.0, INF)

    def _op_Clip(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        if self.opset < 11:
            lo, hi = attrs.get("min", -INF), attrs.get("max", INF)
        else:
            lo = float(self._const(node.input[1], "min")) if len(node.input) > 1 and node.input[1] else -INF
            hi = float(self._const(node.input[2], "max")) if len(node.input) > 2 and node.input[2] else INF
        self._clamp(node, name, lo, hi)

    def _op_BatchNormalization(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        if attrs.get("training_mode", 0):
            raise _Unsupported("training_mode=1: export the model in eval mode")
        if any(o and self.onnx_consumers.get(o) for o in node.output[1:]):
            raise _Unsupported("running mean/var outputs are used: export the model in eval mode")
        x = node.input[0]
        v = self._value(x)
        if len(v.shape) not in (2, 4):
            raise _Unsupported(f"BatchNormalization of a {len(v.shape)}-D tensor is not supported (2-D or 4-D)")
        channels = v.shape[1]
        params = []
        for role, pname in zip(("scale", "bias", "mean", "var"), node.input[1:5]):
            value = np.asarray(self._const(pname, role), np.float32).reshape(-1)
            if value.size != channels:
                raise _Unsupported(f"{role} has {value.size} values for {channels} channels")
            if not np.all(np.isfinite(value)) or (role == "var" and np.any(value < 0)):
                raise _Unsupported(f"{role} '{pname}' has NaN, infinite or (variance) negative values")
            params.append(self._new_tensor(f"{name}.{role}", (channels,), "float32", value))
        nhwc = len(v.shape) == 4
        src = self._nhwc(x) if nhwc else self._raw(x)
        self._emit("batch_norm", name, [src] + params, node.output[0], v.shape, nhwc,
                   {"epsilon": float(attrs.get("epsilon", 1e-5))})

    def _pool_geometry(self, attrs: dict[str, Any], v: _Value) -> tuple[tuple[int, int], tuple[int, int],
                                                                       tuple[int, int, int, int], tuple[int, int, int, int]]:
        """kernel, strides, explicit pads, and pads extended for ceil_mode."""
        if len(v.shape) != 4:
            raise _Unsupported(f"only 2-D pooling is supported (input shape {_shape_str(v.shape)})")
        kernel = tuple(int(k) for k in attrs["kernel_shape"])
        if len(kernel) != 2:
            raise _Unsupported(f"kernel_shape {list(kernel)} is not 2-D")
        strides = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
            raise _Unsupported("dilated pooling is not supported")
        pads = self._conv_pads(attrs, v.shape[2:], kernel, strides, (1, 1))  # type: ignore[arg-type]
        extended = list(pads)
        if attrs.get("ceil_mode", 0):
            for i, (n, k, s) in enumerate(zip(v.shape[2:], kernel, strides)):
                before, after = pads[i], pads[i + 2]
                out = math.ceil((n + before + after - k) / s) + 1
                if (out - 1) * s >= n + before:  # the last window must start inside the input
                    out -= 1
                extended[i + 2] = max(after, (out - 1) * s + k - n - before)
        return kernel, strides, pads, tuple(extended)  # type: ignore[return-value]

    def _pool_out(self, v: _Value, kernel: tuple[int, int], strides: tuple[int, int],
                  pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        oh = conv_out_size(v.shape[2], kernel[0], strides[0], 1, pads[0], pads[2])
        ow = conv_out_size(v.shape[3], kernel[1], strides[1], 1, pads[1], pads[3])
        if oh <= 0 or ow <= 0:
            raise _Unsupported(f"the output would be empty ({oh}x{ow})")
        return (1, v.shape[1], oh, ow)

    def _op_MaxPool(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        if len(node.output) > 1 and node.output[1] and self.onnx_consumers.get(node.output[1]):
            raise _Unsupported("the Indices output is not supported")
        v = self._value(node.input[0])
        kernel, strides, _, pads = self._pool_geometry(attrs, v)
        self._emit("max_pool", name, [self._nhwc(node.input[0])], node.output[0],
                   self._pool_out(v, kernel, strides, pads), True,
                   {"kernel": kernel, "strides": strides, "pads": pads, "act_min": -INF, "act_max": INF})

    def _op_AveragePool(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        kernel, strides, pads, extended = self._pool_geometry(attrs, v)
        src = self._nhwc(x)
        ir_pads = extended
        if attrs.get("count_include_pad", 0) and any(pads):
            # padding counts in the average: pad with zeros explicitly, then pool
            # (only the ceil_mode extension stays excluded, as in PyTorch)
            top, left, bottom, right = pads
            shape = self.tensors[src].shape
            padded = (1, shape[1] + top + bottom, shape[2] + left + right, shape[3])
            src = self._emit_ir("pad", f"{name}/pad", [src], f"{node.output[0]}_padded", padded,
                                {"pads": ((0, 0), (top, bottom), (left, right), (0, 0)), "value": 0.0})
            self.derived[src] = self.derived.get(self._nhwc(x), self._nhwc(x))
            ir_pads = (0, 0, extended[2] - bottom, extended[3] - right)
            v = _Value(src, (1, v.shape[1], padded[1], padded[2]), True)
        self._emit("avg_pool", name, [src], node.output[0], self._pool_out(v, kernel, strides, ir_pads), True,
                   {"kernel": kernel, "strides": strides, "pads": ir_pads, "act_min": -INF, "act_max": INF})

    def _op_GlobalAveragePool(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        if len(v.shape) != 4:
            return self._reduce(node, name, "mean", list(range(2, len(v.shape))), True)
        self._emit("mean", name, [self._nhwc(node.input[0])], node.output[0], (1, v.shape[1], 1, 1), True,
                   {"axes": (1, 2), "keepdims": True})

    def _op_GlobalMaxPool(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        if len(v.shape) != 4:
            return self._reduce(node, name, "reduce_max", list(range(2, len(v.shape))), True)
        src = self._nhwc(node.input[0])
        kernel = (v.shape[2], v.shape[3])
        self._emit("max_pool", name, [src], node.output[0], (1, v.shape[1], 1, 1), True,
                   {"kernel": kernel, "strides": (1, 1), "pads": (0, 0, 0, 0), "act_min": -INF, "act_max": INF})

    def _op_ReduceMean(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        if self.opset >= 18:
            axes = ([int(a) for a in np.atleast_1d(self._const(node.input[1], "axes"))]
                    if len(node.input) > 1 and node.input[1] else None)
        else:
            axes = list(attrs["axes"]) if "axes" in attrs else None
        rank = len(v.shape)
        axes = list(range(rank)) if axes is None else [a % rank for a in axes]
        keepdims = bool(attrs.get("keepdims", 1))
        if rank != 4 or sorted(axes) != [2, 3]:
            return self._reduce(node, name, "mean", axes, keepdims)
        if keepdims:
            self._emit("mean", name, [self._nhwc(x)], node.output[0], (1, v.shape[1], 1, 1), True,
                       {"axes": (1, 2), "keepdims": True})
        else:
            self._emit("mean", name, [self._nhwc(x)], node.output[0], (1, v.shape[1]), False,
                       {"axes": (1, 2), "keepdims": False})

    def _reshape_value(self, name: str, x: str, out: str, out_shape: tuple[int, ...]) -> None:
        v = self._value(x)
        out_shape = tuple(int(d) for d in out_shape)
        if out_shape == v.shape:
            self.values[out] = v
            return
        if len(out_shape) < 1 or out_shape[0] != 1:
            raise _Unsupported(f"reshape to {_shape_str(out_shape)} changes the batch dimension (must stay 1)")
        self._emit("reshape", name, [self._raw(x)], out, out_shape, False, {"shape": out_shape})

    def _op_Reshape(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        target = _reshape_target(v.shape, self._const(node.input[1], "shape"), attrs.get("allowzero", 0))
        self._reshape_value(name, node.input[0], node.output[0], target)

    def _op_Flatten(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        axis = int(attrs.get("axis", 1))
        if axis < 0:
            axis += len(v.shape)
        outer = int(np.prod(v.shape[:axis], dtype=np.int64))
        self._reshape_value(name, node.input[0], node.output[0], (outer, int(np.prod(v.shape, dtype=np.int64)) // outer))

    def _op_Squeeze(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        axes = self._axes(node, attrs)
        rank = len(v.shape)
        axes = [i for i, d in enumerate(v.shape) if d == 1] if axes is None else [a % rank for a in axes]
        if any(v.shape[a] != 1 for a in axes):
            raise _Unsupported(f"cannot squeeze axes {axes} of shape {_shape_str(v.shape)}")
        out_shape = tuple(d for i, d in enumerate(v.shape) if i not in axes)
        self._reshape_value(name, node.input[0], node.output[0], out_shape)

    def _op_Unsqueeze(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        axes = self._axes(node, attrs)
        if axes is None:
            raise _Unsupported("Unsqueeze without axes")
        rank = len(v.shape) + len(axes)
        shape = list(v.shape)
        for a in sorted(a % rank for a in axes):
            shape.insert(a, 1)
        self._reshape_value(name, node.input[0], node.output[0], tuple(shape))

    def _axes(self, node: Any, attrs: dict[str, Any]) -> list[int] | None:
        if self.opset >= 13:
            if len(node.input) > 1 and node.input[1]:
                return [int(a) for a in np.atleast_1d(self._const(node.input[1], "axes"))]
            return None
        return list(attrs["axes"]) if "axes" in attrs else None

    def _op_Transpose(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        rank = len(v.shape)
        perm = tuple(int(p) for p in attrs.get("perm", range(rank - 1, -1, -1)))
        out_shape = tuple(v.shape[p] for p in perm)
        if v.nhwc:  # read the channels-last tensor directly: Y = X.T(perm) = D.T(q)
            q = tuple(NCHW_TO_NHWC.index(p) for p in perm)
            src = v.ir
        else:
            q, src = perm, v.ir
        if q == tuple(range(rank)):
            self.values[node.output[0]] = _Value(src, out_shape, False)
            return
        self._emit("transpose", name, [src], node.output[0], out_shape, False, {"perm": q})

    def _op_Concat(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        ins = [i for i in node.input if i]
        if any(i in self.consts for i in ins):
            raise _Unsupported("concatenating a constant with activations is not supported")
        vals = [self._value(i) for i in ins]
        rank = len(vals[0].shape)
        axis = int(attrs["axis"]) % rank
        for v in vals:
            if len(v.shape) != rank or any(d != e for j, (d, e) in enumerate(zip(v.shape, vals[0].shape)) if j != axis):
                raise _Unsupported(f"inputs of shapes {[_shape_str(v.shape) for v in vals]} do not concatenate on axis {axis}")
        out_shape = list(vals[0].shape)
        out_shape[axis] = sum(v.shape[axis] for v in vals)
        nhwc = rank == 4 and any(v.nhwc for v in vals)
        if nhwc:
            srcs, ir_axis = [self._nhwc(i) for i in ins], NCHW_TO_NHWC.index(axis)
        else:
            srcs, ir_axis = [self._raw(i) for i in ins], axis
        self._emit("concat", name, srcs, node.output[0], tuple(out_shape), nhwc, {"axis": ir_axis})

    def _op_Pad(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        mode = attrs.get("mode", "constant")
        if mode != "constant":
            raise _Unsupported(f"Pad mode '{mode}' is not supported (only 'constant')")
        rank = len(v.shape)
        if self.opset < 11:
            pads, value = list(attrs["pads"]), float(attrs.get("value", 0.0))
            axes = list(range(rank))
        else:
            pads = [int(p) for p in np.atleast_1d(self._const(node.input[1], "pads"))]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(np.asarray(self._const(node.input[2], "constant value")).reshape(-1)[0])
            axes = list(range(rank))
            if len(node.input) > 3 and node.input[3]:
                axes = [int(a) % rank for a in np.atleast_1d(self._const(node.input[3], "axes"))]
        if len(pads) != 2 * len(axes):
            raise _Unsupported(f"pads {pads} do not match rank {rank}")
        per_dim = [(0, 0)] * rank
        for i, a in enumerate(axes):
            per_dim[a] = (int(pads[i]), int(pads[i + len(axes)]))
        if any(b < 0 or e < 0 for b, e in per_dim):
            raise _Unsupported("negative pads (cropping) are not supported")
        if per_dim[0] != (0, 0):
            raise _Unsupported("padding the batch dimension is not supported")
        out_shape = tuple(d + b + e for d, (b, e) in zip(v.shape, per_dim))
        if v.nhwc:
            src, ir_pads = v.ir, tuple(per_dim[p] for p in NCHW_TO_NHWC)
        else:
            src, ir_pads = v.ir, tuple(per_dim)
        self._emit("pad", name, [src], node.output[0], out_shape, v.nhwc, {"pads": ir_pads, "value": value})

    def _op_Softmax(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        rank = len(v.shape)
        axis = int(attrs.get("axis", -1 if self.opset >= 13 else 1)) % rank
        sm = {"beta": 1.0}
        if v.nhwc and axis == 1 and (self.opset >= 13 or v.shape[2] * v.shape[3] == 1):
            self._emit("softmax", name, [v.ir], node.output[0], v.shape, True, sm)
        elif axis == rank - 1:
            self._emit("softmax", name, [self._raw(x)], node.output[0], v.shape, False, sm)
        elif self.opset < 13:
            # opset < 13: softmax over the flattened dims [axis:], a pure reshape around it
            inner = int(np.prod(v.shape[axis:], dtype=np.int64))
            flat = self._emit_ir("reshape", f"{name}/flatten", [self._raw(x)], f"{node.output[0]}_2d",
                                 v.shape[:axis] + (inner,), {"shape": v.shape[:axis] + (inner,)})
            sm_out = self._emit_ir("softmax", name, [flat], f"{node.output[0]}_sm", v.shape[:axis] + (inner,), sm)
            self._emit("reshape", f"{name}/unflatten", [sm_out], node.output[0], v.shape, False,
                       {"shape": v.shape})
        else:
            raise _Unsupported(f"Softmax over axis {axis} of shape {_shape_str(v.shape)} is not supported "
                               f"(only the last axis or the channels)")

    def _op_Identity(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        self._alias(node.output[0], node.input[0])

    def _op_Dropout(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        if len(node.output) > 1 and node.output[1] and self.onnx_consumers.get(node.output[1]):
            raise _Unsupported("the mask output is not supported")
        if len(node.input) > 2 and node.input[2] and bool(np.asarray(self.consts.get(node.input[2], False)).any()):
            raise _Unsupported("training_mode=True: export the model in eval mode")
        self._alias(node.output[0], node.input[0])

    def _op_Shape(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        shape = np.asarray(self._value(node.input[0]).shape if node.input[0] in self.values
                           else self.consts[node.input[0]].shape, np.int64)
        self.consts[node.output[0]] = shape[attrs.get("start", 0):attrs.get("end", None)]

    def _op_Size(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        shape = self._value(node.input[0]).shape if node.input[0] in self.values else self.consts[node.input[0]].shape
        self.consts[node.output[0]] = np.asarray(int(np.prod(shape, dtype=np.int64)), np.int64)

    # ---- QDQ -------------------------------------------------------------
    def _qparams(self, node: Any, attrs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int | None]:
        if attrs.get("block_size", 0):
            raise _Unsupported("blocked quantization is not supported")
        scale = np.asarray(self._const(node.input[1], "scale"))
        if len(node.input) > 2 and node.input[2]:
            zp = np.asarray(self._const(node.input[2], "zero point"))
        else:
            zp = np.zeros(scale.shape, np.uint8)  # the ONNX default type
        axis = int(attrs.get("axis", 1)) if scale.ndim == 1 and scale.size > 1 else None
        return scale, zp, axis

    def _op_QuantizeLinear(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        scale, zp, axis = self._qparams(node, attrs)
        if x in self.consts:
            data = np.asarray(self.consts[x])
            ax = None if axis is None else axis % max(data.ndim, 1)
            self.consts[node.output[0]] = _quantize(data, scale, zp, ax)
            return
        self.qdq = True
        if zp.dtype == np.uint8:
            raise McuforgeError(
                f"{self.source}: node {name} (QuantizeLinear) quantizes activations to uint8; mcuforge needs "
                f"int8 activations: quantize with onnxruntime quantize_static(..., "
                f"activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)")
        if zp.dtype != np.int8:
            raise _Unsupported(f"activation quantization to {zp.dtype} is not supported (int8 only)")
        if axis is not None:
            raise _Unsupported("per-channel activation quantization is not supported (per tensor only)")
        for consumer in self.onnx_consumers.get(node.output[0], []):
            if consumer.op_type != "DequantizeLinear":
                raise _Unsupported(f"its int8 output feeds {consumer.name or consumer.op_type} "
                                   f"({consumer.op_type}); only QuantizeLinear -> DequantizeLinear pairs are supported")
        if node.output[0] in self.graph_outputs:
            raise _Unsupported("int8 graph outputs are not supported (end the model with DequantizeLinear)")
        self._value(x)
        self.q_outputs[node.output[0]] = (x, Quant(scale.astype(np.float64), zp.astype(np.int64)))

    def _op_DequantizeLinear(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        q_in = node.input[0]
        scale, zp, axis = self._qparams(node, attrs)
        if len(node.input) < 3 or not node.input[2]:
            zp = np.zeros(scale.shape, self.consts[q_in].dtype if q_in in self.consts else np.int8)
        if q_in in self.consts:
            data = np.asarray(self.consts[q_in])
            ax = None if axis is None else axis % max(data.ndim, 1)
            self.consts[node.output[0]] = _dequantize(data, scale, zp, ax)
            self.qconsts[node.output[0]] = _QConst(data, scale.astype(np.float64).reshape(-1),
                                                   zp.astype(np.int64).reshape(-1), ax)
            return
        if q_in not in self.q_outputs:
            raise _Unsupported("DequantizeLinear of a non-constant must follow a QuantizeLinear "
                               "(int8 model inputs are not supported)")
        x, quant = self.q_outputs[q_in]
        mine = Quant(scale.astype(np.float64), zp.astype(np.int64))
        if not mine.same_as(quant):
            raise _Unsupported("scale/zero point differ from the QuantizeLinear it dequantizes")
        v = self._value(x)
        have = self.quant.get(v.ir)
        if have is None:
            self.quant[v.ir] = quant
            self.values[node.output[0]] = v
        elif have.same_as(quant):
            self.values[node.output[0]] = v
        else:
            # the same tensor quantized twice with different parameters: a requantization
            out = self._emit_ir("clamp", f"{name}/requantize", [v.ir], node.output[0], self.tensors[v.ir].shape,
                                {"act_min": -INF, "act_max": INF})
            self.quant[out] = quant
            self.values[node.output[0]] = _Value(out, v.shape, v.nhwc)


    # ---- 1-D convolution, reductions over any axes, PRelu ----------------------------
    def _conv1d(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        """Conv over (N, C, L): the 2-D convolution of a (1, 1, L, C) channels-last view with a
        (1, k) kernel. The transposes between consecutive 1-D layers cancel in the layout clean-up."""
        import types

        x, w_name = node.input[0], node.input[1]
        v = self._value(x)
        w = self._const(w_name, "weight")
        if w.ndim != 3:
            raise _Unsupported(f"weight of shape {_shape_str(w.shape)} is not a 1-D convolution kernel")
        if w_name in self.qconsts or self.quant.get(v.ir) is not None:
            raise _Unsupported("quantized (QDQ) 1-D convolution is not supported: give the float model with "
                               "calibration data")
        _, channels, length = v.shape
        view = self._emit_ir("reshape", f"{name}/to_2d", [self._emit_ir(
            "transpose", f"{name}/to_nlc", [self._raw(x)], f"{x}_nlc", (1, length, channels), {"perm": (0, 2, 1)})],
            f"{x}_2d", (1, 1, length, channels), {"shape": (1, 1, length, channels)})
        x2, w2, y2 = f"{x}__2d", f"{w_name}__2d", f"{node.output[0]}__2d"
        self.values[x2] = _Value(view, (1, channels, 1, length), True)
        self.consts[w2] = np.asarray(w).reshape(w.shape[0], w.shape[1], 1, w.shape[2])
        a2 = dict(attrs)
        a2["strides"] = [1] + [int(s) for s in attrs.get("strides", [1])]
        a2["dilations"] = [1] + [int(d) for d in attrs.get("dilations", [1])]
        if "pads" in attrs:
            a2["pads"] = [0, int(attrs["pads"][0]), 0, int(attrs["pads"][1])]
        inputs = [x2, w2] + list(node.input[2:])
        self._op_Conv(types.SimpleNamespace(input=inputs, output=[y2]), name, a2)
        y = self.values[y2]
        out_c, out_len = y.shape[1], y.shape[3]
        flat = self._emit_ir("reshape", f"{name}/to_1d", [y.ir], f"{node.output[0]}_nlc", (1, out_len, out_c),
                             {"shape": (1, out_len, out_c)})
        self._emit("transpose", f"{name}/to_ncl", [flat], node.output[0], (1, out_c, out_len), False,
                   {"perm": (0, 2, 1)})

    def _reduce(self, node: Any, name: str, op: str, axes: list[int], keepdims: bool) -> None:
        """ReduceMean / ReduceMax / global pooling over `axes` (ONNX order) of any rank: a 4-D value
        reduces channels-last (its axes mapped), then drops the reduced axes if keepdims is 0."""
        x = node.input[0]
        v = self._value(x)
        rank = len(v.shape)
        axes = sorted({int(a) % rank for a in axes})
        kept = tuple(1 if d in axes else n for d, n in enumerate(v.shape))
        out_shape = kept if keepdims else tuple(n for d, n in enumerate(v.shape) if d not in axes)
        if 0 in axes:
            raise _Unsupported("reducing the batch axis is not supported")
        if rank == 4:
            ir_axes = tuple(sorted(NCHW_TO_NHWC.index(a) for a in axes))
            mid = node.output[0] if keepdims else f"{node.output[0]}__kept"
            self._emit(op, name, [self._nhwc(x)], mid, kept, True, {"axes": ir_axes, "keepdims": True})
            if not keepdims:
                self._reshape_value(f"{name}/squeeze", mid, node.output[0], out_shape)
            return
        self._emit(op, name, [self._raw(x)], node.output[0], out_shape, False,
                   {"axes": tuple(axes), "keepdims": keepdims})

    def _op_ReduceMax(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        v = self._value(node.input[0])
        if self.opset >= 18:
            axes = ([int(a) for a in np.atleast_1d(self._const(node.input[1], "axes"))]
                    if len(node.input) > 1 and node.input[1] else None)
        else:
            axes = list(attrs["axes"]) if "axes" in attrs else None
        rank = len(v.shape)
        axes = list(range(rank)) if axes is None else [a % rank for a in axes]
        self._reduce(node, name, "reduce_max", axes, bool(attrs.get("keepdims", 1)))

    def _op_PRelu(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        slope = np.asarray(self._const(node.input[1], "slope"), np.float32)
        rank = len(v.shape)
        if slope.ndim > rank:
            raise _Unsupported(f"slope of shape {_shape_str(slope.shape)} has more axes than the input")
        full = slope.reshape((1,) * (rank - slope.ndim) + slope.shape)
        if any(s not in (1, d) for s, d in zip(full.shape, v.shape)):
            raise _Unsupported(f"slope of shape {_shape_str(slope.shape)} does not broadcast to "
                               f"{_shape_str(v.shape)}")
        if not np.all(np.isfinite(full)):
            raise _Unsupported("slope has NaN or infinite values")
        if rank == 4:
            data = np.ascontiguousarray(full.transpose(NCHW_TO_NHWC))
            alpha = self._new_tensor(f"{name}.slope", data.shape, "float32", data)
            self._emit("prelu", name, [self._nhwc(x), alpha], node.output[0], v.shape, True, {})
        else:
            alpha = self._new_tensor(f"{name}.slope", full.shape, "float32", np.ascontiguousarray(full))
            self._emit("prelu", name, [self._raw(x), alpha], node.output[0], v.shape, False, {})


    def _op_Tile(self, node: Any, name: str, attrs: dict[str, Any]) -> None:
        x = node.input[0]
        v = self._value(x)
        repeats = [int(r) for r in np.atleast_1d(self._const(node.input[1], "repeats"))]
        if len(repeats) != len(v.shape) or any(r < 1 for r in repeats):
            raise _Unsupported(f"repeats {repeats} do not fit shape {_shape_str(v.shape)}")
        if repeats[0] != 1:
            raise _Unsupported("tiling the batch axis is not supported")
        out_shape = tuple(d * r for d, r in zip(v.shape, repeats))
        if len(v.shape) == 4:
            self._emit("tile", name, [self._nhwc(x)], node.output[0], out_shape, True,
                       {"multiples": tuple(repeats[p] for p in NCHW_TO_NHWC)})
        else:
            self._emit("tile", name, [self._raw(x)], node.output[0], out_shape, False,
                       {"multiples": tuple(repeats)})


FRONTEND = Frontend(name="onnx", suffixes=(".onnx",), load=load)
