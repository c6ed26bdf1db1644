"""Values a frontend copies out of a model file, made safe before use.

A model file is untrusted input: every name in it may be any byte string,
every dimension any integer. This module is the one place that decides what
is accepted, so the frontends (and the whole-model checks in ``ir``) call it
instead of repeating the rules:

* ``text``: any name (bytes or str) -> a printable ``str``. Invalid UTF-8 is
  kept as ``\\xNN`` escapes, control, surrogate and bidirectional-override
  characters are escaped the same way; the result is deterministic, so the
  same name always maps to the same text (tensor references stay
  consistent). It is then safe in ``report.json``, in error messages, in the
  C comments (``cwriter.c_comment`` keeps only printable ASCII there) and
  never becomes a C identifier (generated symbols are made from the model
  name and layer indices only).
* ``sanitize_proto_strings``: ``text`` applied to every string field of a
  protobuf message (the ONNX ModelProto), in place.
* ``check_shape``: dimensions must be non-negative and a tensor at most
  ``MAX_TENSOR_ELEMENTS`` elements (``check_graph`` adds the activations'
  total and the multiply-accumulates of one inference), computed with Python integers (no int64
  wrap-around), before anything of that size is allocated.
* ``FoldBudget``: constant folding at import time (ConstantOfShape, Expand,
  Range, broadcasting arithmetic, Gather ...) may not create more than
  ``MAX_FOLDED_ELEMENTS`` elements in total, checked before computing.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

import numpy as np

from .ir import MAX_TENSOR_ELEMENTS, McuforgeError, check_shape  # noqa: F401 (re-exported)

# All activations of a model together (calibration keeps every one of them).
MAX_ACTIVATION_ELEMENTS = 1 << 26
# Constants computed at import time from shape arithmetic, all nodes together.
MAX_FOLDED_ELEMENTS = 1 << 26
# Multiply-accumulates of one inference (calibration runs the float model on the host; a
# microcontroller would take minutes per inference beyond this).
MAX_MACS = 1 << 32

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def text(value: Any) -> str:
    """A name from a model file as printable text.

    >>> text(b"conv\\xff\\xfe1")
    'conv\\\\xff\\\\xfe1'
    >>> text("a\\nb */ c")
    'a\\\\x0ab */ c'
    >>> text("Conv_7")
    'Conv_7'
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "backslashreplace")
    s = str(value)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


def sanitize_proto_strings(message: Any) -> None:
    """Apply `text` to every string field of a protobuf message, recursively."""
    from google.protobuf.descriptor import FieldDescriptor

    stack = [message]
    while stack:
        msg = stack.pop()
        for field, value in msg.ListFields():
            repeated = _repeated(field)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                if repeated:
                    if field.message_type.GetOptions().map_entry:
                        continue
                    stack.extend(value)
                else:
                    stack.append(value)
            elif field.type == FieldDescriptor.TYPE_STRING:
                if repeated:
                    for i, v in enumerate(value):
                        safe = text(v)
                        if safe != v:
                            value[i] = safe
                else:
                    safe = text(value)
                    if safe != value:
                        setattr(msg, field.name, safe)


def _repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5.28 (label is deprecated, then gone)
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED


def elements(shape: Iterable[Any]) -> int:
    """Element count with Python integers (never wraps)."""
    return math.prod(int(d) for d in shape)


# geometry attributes of the canonical ops: attribute -> smallest valid value
_GEOMETRY = {"strides": 1, "dilations": 1, "kernel": 1, "pads": 0}
_WINDOWED = ("conv2d", "depthwise_conv2d", "avg_pool", "max_pool", "pad")


def _flat_ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value, dtype=np.int64).reshape(-1)]


def check_graph(graph) -> None:
    """Whole-model checks a frontend's Graph must pass before any pass or
    calibration runs on it: every reference resolves, no activation is
    empty, geometry attributes are in range (strides, dilations and kernels
    >= 1, pads >= 0, none above MAX_TENSOR_ELEMENTS), permutations and axes fit the rank, reshapes keep the
    size, and the quantization parameters are valid (check_quantization)."""
    where = graph.source or graph.name
    tensors = graph.tensors
    for name in list(graph.inputs) + list(graph.outputs):
        if name not in tensors:
            raise McuforgeError(f"{where}: model input/output '{name}' is not a tensor of the graph")
        if tensors[name].size == 0:
            raise McuforgeError(f"{where}: model input/output '{name}' of shape {tensors[name].shape} has no "
                                f"elements")
    for n in graph.nodes:
        def bad(why: str) -> McuforgeError:
            return McuforgeError(f"{where}: node '{n.name}' ({n.op}): {why}; the model file is corrupt or uses "
                                 f"parameters no int8 kernel supports")

        missing = [t for t in list(n.inputs) + list(n.outputs) if t and t not in tensors]
        if missing or not n.outputs:
            raise bad(f"refers to tensor '{missing[0]}', which does not exist" if missing else "has no output")
        for t in n.outputs:
            if not tensors[t].is_const and tensors[t].size == 0:
                raise bad(f"its output '{t}' of shape {tensors[t].shape} has no elements")
        a = n.attrs
        if n.op in _WINDOWED:
            for key, lowest in _GEOMETRY.items():
                # the kernels' parameters are int32; no value above the largest tensor means anything
                if key in a and any(not lowest <= v <= MAX_TENSOR_ELEMENTS for v in _flat_ints(a[key])):
                    raise bad(f"{key} {_flat_ints(a[key])} must be between {lowest} and {MAX_TENSOR_ELEMENTS:,}")
        rank = len(tensors[n.inputs[0]].shape) if n.inputs and n.inputs[0] else 0
        if n.op == "transpose" and sorted(_flat_ints(a.get("perm", ()))) != list(range(rank)):
            raise bad(f"perm {list(a.get('perm', ()))} is not a permutation of {rank} axes")
        if n.op == "concat" and not -rank <= int(a.get("axis", 0)) < max(rank, 1):
            raise bad(f"axis {a.get('axis')} is outside rank {rank}")
        if n.op == "reshape" and tensors[n.inputs[0]].size != tensors[n.outputs[0]].size:
            raise bad(f"reshapes {tensors[n.inputs[0]].shape} to {tensors[n.outputs[0]].shape}")
    total = sum(t.size for t in graph.activations())
    if total > MAX_ACTIVATION_ELEMENTS:
        raise McuforgeError(f"{where}: the model's activations hold {total:,} values together, more than "
                            f"mcuforge's limit of {MAX_ACTIVATION_ELEMENTS:,}; it is not a microcontroller model")
    macs = sum(_macs(n, tensors) for n in graph.nodes)
    if macs > MAX_MACS:
        raise McuforgeError(f"{where}: the model needs {macs:,} multiply-accumulates per inference, more than "
                            f"mcuforge's limit of {MAX_MACS:,}; it is not a microcontroller model")
    check_quantization(graph)


def _macs(n, tensors) -> int:
    """Multiply-accumulates of a node, from shapes (Python integers)."""
    if n.op not in ("conv2d", "depthwise_conv2d", "fully_connected", "avg_pool", "max_pool"):
        return 0
    out = elements(tensors[n.outputs[0]].shape)
    if n.op in ("avg_pool", "max_pool"):
        return out * elements(n.attrs.get("kernel", (1, 1)))
    w = tensors[n.inputs[1]].shape if len(n.inputs) > 1 and n.inputs[1] else (1,)
    per_output = {"conv2d": elements(w[1:]), "depthwise_conv2d": elements(w[:3]),
                  "fully_connected": w[-1]}[n.op]
    return out * per_output


def check_quantization(graph) -> None:
    """Scales positive and finite, activation zero points inside int8, for
    every tensor a frontend gave quantization parameters (the TFLite and ONNX
    QDQ files bring their own)."""
    where = graph.source or graph.name
    for t in graph.tensors.values():
        q = t.quant
        if q is None:
            continue
        if not np.all(np.isfinite(q.scale)) or np.any(q.scale <= 0):
            bad = q.scale[~(np.isfinite(q.scale) & (q.scale > 0))][0]
            raise McuforgeError(f"{where}: tensor '{t.name}' has scale {bad}; quantization scales must be "
                                f"positive and finite (the file is corrupt or badly quantized)")
        outside = q.zero_point[(q.zero_point < -128) | (q.zero_point > 127)]
        if not t.is_const and outside.size:
            raise McuforgeError(f"{where}: activation '{t.name}' has zero point {int(outside[0])} outside int8 "
                                f"[-128, 127]")


def check_external_data(model: Any, base_dir: Any) -> None:
    """ONNX weights stored in external files: the declared shape, the declared
    length and what would be read (the file from its offset, when no length is
    given) must all stay within the tensor limit, checked before reading."""
    from pathlib import Path

    limit = MAX_TENSOR_ELEMENTS * 8  # bytes: the largest tensor in the widest type
    for t in model.graph.initializer:
        if t.data_location != 1:  # TensorProto.EXTERNAL
            continue
        name = text(t.name)
        check_shape(name, t.dims, "external weight")
        info = {e.key: e.value for e in t.external_data}
        try:
            offset, length = int(info.get("offset", 0) or 0), info.get("length")
            length = None if length in (None, "") else int(length)
        except ValueError:
            raise McuforgeError(f"external weight '{name}' has a non-numeric offset or length") from None
        if length is None:
            path = Path(base_dir) / text(info.get("location", ""))
            length = path.stat().st_size - offset if path.is_file() else 0
        if length > limit or offset < 0 or length < 0:
            raise McuforgeError(f"external weight '{name}' would read {length:,} bytes at offset {offset:,} "
                                f"(limit {limit:,}); the model file is corrupt or not meant for a microcontroller")


class FoldBudget:
    """Bounds what constant folding may allocate, checked before each fold."""

    def __init__(self, limit: int = MAX_FOLDED_ELEMENTS):
        self.left = limit

    def take(self, op: str, attrs: dict[str, Any], ins: list[Any]) -> None:
        """Raise ValueError when folding `op` on `ins` would exceed the budget."""
        n = _folded_elements(op, attrs, ins)
        if n > min(self.left, MAX_TENSOR_ELEMENTS):
            raise ValueError(f"folding it would create a constant of {n:,} elements (limit "
                             f"{min(self.left, MAX_TENSOR_ELEMENTS):,}); the model file is corrupt or not meant "
                             f"for a microcontroller")
        self.left -= n


def _size(x: Any) -> int:
    return 0 if x is None else int(np.asarray(x).size)


def _folded_elements(op: str, attrs: dict[str, Any], ins: list[Any]) -> int:
    """An upper bound of the elements `op` produces, computed without running it."""
    arrays = [np.asarray(i) for i in ins if i is not None]
    if op == "ConstantOfShape":
        return elements(np.asarray(ins[0]).reshape(-1))
    if op == "Expand":
        shape = tuple(int(d) for d in np.asarray(ins[1]).reshape(-1))
        if any(d < 0 for d in shape):
            raise ValueError(f"Expand to a negative shape {shape}")
        return elements(np.broadcast_shapes(np.asarray(ins[0]).shape, tuple(max(d, 1) for d in shape)))
    if op == "Range":
        start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in ins[:3])
        if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
            raise ValueError(f"Range({start}, {limit}, {delta}) is not a finite range")
        return max(0, math.ceil((limit - start) / delta))
    if op == "Gather" and len(arrays) >= 2:
        x, idx = arrays[0], arrays[1]
        axis = int(attrs.get("axis", 0))
        rest = elements(x.shape) // max(1, x.shape[axis % max(x.ndim, 1)] if x.ndim else 1)
        return idx.size * rest
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater", "Where", "Max", "Min"):
        return elements(np.broadcast_shapes(*(a.shape for a in arrays))) if arrays else 0
    return sum(_size(a) for a in arrays) or 1
