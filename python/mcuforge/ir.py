"""The intermediate representation every stage reads and writes.

One Graph class serves the whole flow: frontends produce a float Graph, the
passes canonicalize it, quantization turns it into an int8 Graph (same class,
tensors carry `Quant`), and the planner wraps it in a Plan.

Conventions (fixed, every stage relies on them):

* Activations are channels-last: 4-D tensors are ``(1, H, W, C)``, 2-D are
  ``(1, N)``. Batch is always 1. Frontends of channels-first formats convert
  at import and record ``Graph.source_layout = "NCHW"`` so that the CLI can
  convert user data.
* Weights: conv2d ``(O, KH, KW, I)``; depthwise_conv2d ``(1, KH, KW, C*M)``;
  fully_connected ``(N, K)``. Bias is 1-D ``(O,)``.
* ``Node.inputs`` / ``Node.outputs`` are tensor names; an absent optional
  input is ``""``.
* Fused activations are a float clamp range on the node:
  ``attrs["act_min"]``, ``attrs["act_max"]`` (``-inf``/``inf`` when absent).

Canonical ops and their attributes (after passes):

=================  =========================================================
op                 attrs
=================  =========================================================
conv2d             strides (sh, sw), dilations (dh, dw),
                   pads (top, left, bottom, right), act_min, act_max
depthwise_conv2d   same as conv2d plus depth_multiplier
fully_connected    act_min, act_max (input is (1, K) or (1, ..., K): rows)
add                act_min, act_max (same shapes, no broadcasting)
avg_pool           kernel (kh, kw), strides, pads, act_min, act_max
                   (count excludes padding, as TFLite)
max_pool           kernel, strides, pads, act_min, act_max
mean               axes (tuple), keepdims (bool)  -- global average pooling
reshape            shape (tuple)   -- same bytes, a pure alias
transpose          perm (tuple)
concat             axis (int, on the channels-last shape)
pad                pads: tuple of (before, after) per dimension, value (float)
softmax            beta (float), over the last axis
clamp              act_min, act_max  -- relu/relu6/clip that could not be fused
=================  =========================================================
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .errors import BudgetError, McuforgeError, UnsupportedModelError  # noqa: F401 (re-exported)

INF = float("inf")


# No microcontroller holds a tensor of 16 Mi elements (16 MiB of int8 activations, or of
# weights in flash); int32 sizes in the generated C could go further, but calibration runs
# the float model on the host, so the limits are set where that stays affordable.
MAX_TENSOR_ELEMENTS = 1 << 24


def check_shape(name: str, shape: Iterable[Any], what: str = "tensor") -> None:
    """Refuse negative dimensions and tensors above MAX_TENSOR_ELEMENTS."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise McuforgeError(f"{what} '{name}' has a negative dimension {tuple(dims)}; the model file is corrupt "
                            f"or was not exported with static shapes")
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise McuforgeError(f"{what} '{name}' has shape {tuple(dims)}, {n:,} elements: more than mcuforge's limit "
                            f"of {MAX_TENSOR_ELEMENTS:,} per tensor (no microcontroller holds it); the model file is "
                            f"corrupt or not meant for a microcontroller")


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    Per-tensor when ``axis`` is None (scale and zero_point have one element),
    per-channel along ``axis`` otherwise.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float64))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))

    @property
    def per_tensor(self) -> bool:
        return self.axis is None

    def same_as(self, other: "Quant | None") -> bool:
        return (
            other is not None
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # float32 | int8 | int32
    data: np.ndarray | None = None  # constant value, or None for activations
    quant: Quant | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        check_shape(self.name, self.shape)  # every tensor, whatever made it

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    source: str = ""  # path of the model file
    source_format: str = ""  # onnx | torch | tflite
    source_layout: str = "NHWC"  # layout the user's data comes in
    source_hash: str = ""  # sha256 of the model file (or of the exported bytes)

    # ---- queries -------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def activations(self) -> list[Tensor]:
        """Non-constant tensors in a deterministic order (graph inputs, then
        node outputs in execution order)."""
        seen: dict[str, Tensor] = {}
        for name in self.inputs:
            seen[name] = self.tensors[name]
        for n in self.nodes:
            for o in n.outputs:
                seen.setdefault(o, self.tensors[o])
        return list(seen.values())

    def copy(self) -> "Graph":
        return dataclasses.replace(
            self,
            tensors={k: dataclasses.replace(v) for k, v in self.tensors.items()},
            nodes=[dataclasses.replace(n, inputs=list(n.inputs), outputs=list(n.outputs),
                                       attrs=dict(n.attrs)) for n in self.nodes],
            inputs=list(self.inputs),
            outputs=list(self.outputs),
        )

    def remove_unused(self) -> None:
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(i for i in n.inputs if i)
            used.update(n.outputs)
        for name in list(self.tensors):
            if name not in used:
                del self.tensors[name]

    def toposort(self) -> None:
        """Order nodes so every input is produced before use (stable)."""
        available = set(self.inputs) | {t.name for t in self.tensors.values() if t.is_const}
        pending = list(self.nodes)
        ordered: list[Node] = []
        while pending:
            progress = False
            rest = []
            for n in pending:
                if all((not i) or i in available for i in n.inputs):
                    ordered.append(n)
                    available.update(n.outputs)
                    progress = True
                else:
                    rest.append(n)
            if not progress:
                names = ", ".join(n.name for n in rest[:5])
                raise McuforgeError(f"graph has a cycle or a missing input at node(s) {names}")
            pending = rest
        self.nodes = ordered

    def fingerprint(self) -> str:
        """A hash of the graph's structure and constants (for caching/report)."""
        h = hashlib.sha256()
        for n in self.nodes:
            h.update(repr((n.op, n.inputs, n.outputs, sorted(n.attrs.items(), key=lambda kv: kv[0]))).encode())
        for name in sorted(self.tensors):
            t = self.tensors[name]
            h.update(repr((name, t.shape, t.dtype)).encode())
            if t.data is not None:
                h.update(np.ascontiguousarray(t.data).tobytes())
        return h.hexdigest()


def unique_name(existing: Iterable[str], base: str) -> str:
    names = set(existing)
    if base not in names:
        return base
    i = 1
    while f"{base}_{i}" in names:
        i += 1
    return f"{base}_{i}"


def conv_out_size(size: int, kernel: int, stride: int, dilation: int, pad_before: int, pad_after: int) -> int:
    eff = dilation * (kernel - 1) + 1
    return (size + pad_before + pad_after - eff) // stride + 1
