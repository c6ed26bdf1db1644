"""Float NumPy executor of a Graph (canonical ops, plus the frontend's
``batch_norm``).

``run_float(graph, inputs)`` returns every activation (graph inputs and every
node output) as float32, channels-last. The quantizer calibrates from these;
the tests compare them with PyTorch and onnxruntime.

Arithmetic is float64 (convolutions as im2col matrix products), results are
stored as float32. Quant annotations of activations are ignored; constants
stored as integers (the weights and biases of a QDQ model) are dequantized.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .ir import INF, Graph, McuforgeError, Node, Quant, Tensor


def constant_value(tensor: Tensor) -> np.ndarray:
    """The real value of a constant (integer data is dequantized)."""
    data = np.asarray(tensor.data)
    if np.issubdtype(data.dtype, np.integer) and tensor.quant is not None:
        q = tensor.quant
        scale, zp = q.scale, q.zero_point
        if q.axis is not None and scale.size > 1:
            shape = [1] * data.ndim
            shape[q.axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        else:
            scale, zp = scale.reshape(()), zp.reshape(())
        return (data.astype(np.float64) - zp) * scale
    return data.astype(np.float64)


def _windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
             dilations: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """(OH, OW, KH, KW, C) view of the (already padded) (H, W, C) array."""
    sh, sw, sc = x.strides
    return as_strided(x, shape=(out_hw[0], out_hw[1], kernel[0], kernel[1], x.shape[2]),
                      strides=(sh * strides[0], sw * strides[1], sh * dilations[0], sw * dilations[1], sc),
                      writeable=False)


# elements of the window matrix a conv materializes at once: large layers run in row blocks,
# so the host memory calibration takes stays bounded whatever the layer's size
_BLOCK_ELEMENTS = 1 << 22


def _row_blocks(cols: np.ndarray, per_row: int) -> list[np.ndarray]:
    """Output rows of a (OH, OW, KH, KW, C) window view in blocks of at most _BLOCK_ELEMENTS."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, per_row))
    return [cols[r:r + rows] for r in range(0, cols.shape[0], rows)]


def _pad_hw(x: np.ndarray, pads: tuple[int, int, int, int], value: float) -> np.ndarray:
    top, left, bottom, right = pads
    return np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=value)


def _out_hw(x_hw: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
            dilations: tuple[int, int], pads: tuple[int, int, int, int]) -> tuple[int, int]:
    oh = (x_hw[0] + pads[0] + pads[2] - dilations[0] * (kernel[0] - 1) - 1) // strides[0] + 1
    ow = (x_hw[1] + pads[1] + pads[3] - dilations[1] * (kernel[1] - 1) - 1) // strides[1] + 1
    return oh, ow


def _act(y: np.ndarray, node: Node) -> np.ndarray:
    lo, hi = node.attrs.get("act_min", -INF), node.attrs.get("act_max", INF)
    if lo == -INF and hi == INF:
        return y
    return np.clip(y, lo, hi)


def _conv2d(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    o, kh, kw, _ = w.shape
    strides, dil = tuple(node.attrs["strides"]), tuple(node.attrs["dilations"])
    pads = tuple(node.attrs["pads"])
    oh, ow = _out_hw(x.shape[1:3], (kh, kw), strides, dil, pads)
    cols = _windows(_pad_hw(x[0], pads, 0.0), (kh, kw), strides, dil, (oh, ow))
    wm = w.reshape(o, -1).T
    y = np.concatenate([c.reshape(-1, wm.shape[0]) @ wm for c in _row_blocks(cols, ow * wm.shape[0])])
    if b is not None:
        y = y + b
    return y.reshape(1, oh, ow, o)


def _depthwise(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    _, kh, kw, cm = w.shape
    mult = int(node.attrs.get("depth_multiplier", 1))
    strides, dil = tuple(node.attrs["strides"]), tuple(node.attrs["dilations"])
    pads = tuple(node.attrs["pads"])
    oh, ow = _out_hw(x.shape[1:3], (kh, kw), strides, dil, pads)
    xin = x[0] if mult == 1 else np.repeat(x[0], mult, axis=2)
    cols = _windows(_pad_hw(xin, pads, 0.0), (kh, kw), strides, dil, (oh, ow))
    y = np.concatenate([np.einsum("hwijc,ijc->hwc", c, w[0], optimize=True)
                        for c in _row_blocks(cols, ow * kh * kw * cm)])
    if b is not None:
        y = y + b
    return y.reshape(1, oh, ow, cm)


def _transpose_conv(node: Node, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    from .kernels.transpose_conv import scatter_sum

    a = node.attrs
    y = scatter_sum(x[0], w, a["strides"], a["pads"][:2], a["out_hw"])
    if b is not None:
        y = y + b
    return y[None]


def _pool(node: Node, x: np.ndarray, kind: str) -> np.ndarray:
    kernel, strides = tuple(node.attrs["kernel"]), tuple(node.attrs["strides"])
    pads = tuple(node.attrs.get("pads", (0, 0, 0, 0)))
    oh, ow = _out_hw(x.shape[1:3], kernel, strides, (1, 1), pads)
    if kind == "max":
        cols = _windows(_pad_hw(x[0], pads, -np.inf), kernel, strides, (1, 1), (oh, ow))
        return cols.max(axis=(2, 3))[None]
    total = _windows(_pad_hw(x[0], pads, 0.0), kernel, strides, (1, 1), (oh, ow)).sum(axis=(2, 3))
    ones = np.ones(x.shape[1:3] + (1,))
    count = _windows(_pad_hw(ones, pads, 0.0), kernel, strides, (1, 1), (oh, ow)).sum(axis=(2, 3))
    return (total / count)[None]


def _softmax(x: np.ndarray, beta: float) -> np.ndarray:
    z = beta * (x - x.max(axis=-1, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _batch_norm(node: Node, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                var: np.ndarray) -> np.ndarray:
    return (x - mean) / np.sqrt(var + node.attrs.get("epsilon", 1e-5)) * gamma + beta


def _run_node(node: Node, args: list[np.ndarray | None]) -> np.ndarray:
    op, a = node.op, node.attrs
    x = args[0]
    if op == "conv2d":
        return _act(_conv2d(node, x, args[1], args[2]), node)
    if op == "depthwise_conv2d":
        return _act(_depthwise(node, x, args[1], args[2]), node)
    if op == "fully_connected":
        y = x @ args[1].T
        if args[2] is not None:
            y = y + args[2]
        return _act(y, node)
    if op == "add":
        return _act(x + args[1], node)
    if op == "avg_pool":
        return _act(_pool(node, x, "avg"), node)
    if op == "max_pool":
        return _act(_pool(node, x, "max"), node)
    if op == "mean":
        return x.mean(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", True)))
    if op == "tile":
        return np.tile(x, tuple(int(m) for m in a["multiples"]))
    if op == "reduce_max":
        return x.max(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", True)))
    if op == "reshape":
        return x.reshape(tuple(a["shape"]))
    if op == "transpose":
        return np.transpose(x, tuple(a["perm"]))
    if op == "concat":
        return np.concatenate(args, axis=int(a["axis"]))
    if op == "pad":
        return np.pad(x, tuple(tuple(p) for p in a["pads"]), constant_values=float(a.get("value", 0.0)))
    if op == "softmax":
        return _softmax(x, float(a.get("beta", 1.0)))
    if op == "clamp":
        return _act(x, node)
    if op == "batch_norm":
        return _batch_norm(node, *args)  # type: ignore[arg-type]
    if op == "strided_slice":
        index = [b + s * np.arange(n) for b, s, n in zip(a["begin"], a["strides"], a["counts"])]
        return x[np.ix_(*index)]
    if op == "resize_nearest":
        return x[:, np.asarray(a["row_index"])][:, :, np.asarray(a["col_index"])]
    if op == "transpose_conv":
        return _act(_transpose_conv(node, x, args[1], args[2]), node)
    if op in _ELEMENTWISE:
        return _act(_ELEMENTWISE[op](a, *args), node)
    raise McuforgeError(f"float executor: node {node.name} has op '{op}' which it does not implement")


_ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "hard_swish": lambda a, x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hard_sigmoid": lambda a, x: np.clip(float(a.get("alpha", 0.2)) * x + float(a.get("beta", 0.5)), 0.0, 1.0),
    "logistic": lambda a, x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": lambda a, x: np.tanh(x),
    "leaky_relu": lambda a, x: np.where(x >= 0, x, float(a["alpha"]) * x),
    "mul": lambda a, x, y: x * y,
    "sub": lambda a, x, y: x - y,
    "maximum": lambda a, x, y: np.maximum(x, y),
    "minimum": lambda a, x, y: np.minimum(x, y),
    "prelu": lambda a, x, alpha: np.where(x >= 0, x, x * alpha),
}

OPS: tuple[str, ...] = ("conv2d", "depthwise_conv2d", "fully_connected", "add", "avg_pool", "max_pool", "mean",
                        "reshape", "transpose", "concat", "pad", "softmax", "clamp", "batch_norm",
                        "reduce_max", "tile") + tuple(_ELEMENTWISE) + (
    "strided_slice", "resize_nearest", "transpose_conv")


def fake_quantize(x: np.ndarray, quant: Quant, dtype: str = "int8") -> np.ndarray:
    """Round `x` to the grid of `quant` and back (per-tensor), saturating."""
    info = np.iinfo(dtype)
    scale, zp = float(quant.scale.reshape(-1)[0]), int(quant.zero_point.reshape(-1)[0])
    q = np.clip(np.rint(x / scale) + zp, info.min, info.max)
    return (q - zp) * scale


def run_float(graph: Graph, inputs: dict[str, np.ndarray],
              on_node: Callable[[Node, np.ndarray], None] | None = None,
              fake_quant: bool = False) -> dict[str, np.ndarray]:
    """Run `graph` in float on channels-last `inputs` (one array per graph
    input, keyed by name; a single array is also accepted for a one-input
    graph). Returns {tensor name: float32 array} for the graph inputs and
    every node output, in execution order.

    Activation quant annotations are ignored unless `fake_quant` is true:
    then every activation that has a per-tensor Quant is rounded to its int8
    grid (as a QDQ model computes), which makes a pre-quantized graph
    comparable with onnxruntime."""
    if not isinstance(inputs, dict):
        if len(graph.inputs) != 1:
            raise McuforgeError(f"graph {graph.name} has {len(graph.inputs)} inputs: pass a dict name -> array")
        inputs = {graph.inputs[0]: inputs}
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in inputs:
            raise McuforgeError(f"run_float: no value given for input '{name}' of graph {graph.name}")
        arr = np.asarray(inputs[name], dtype=np.float64)
        want = graph.tensors[name].shape
        if arr.shape != want:
            if arr.size == int(np.prod(want)) and arr.shape == want[1:]:
                arr = arr.reshape(want)
            else:
                raise McuforgeError(f"run_float: input '{name}' has shape {arr.shape}, the graph expects "
                                    f"{want} (channels last)")
        if fake_quant and graph.tensors[name].quant is not None:
            arr = fake_quantize(arr, graph.tensors[name].quant)
        values[name] = arr
    consts: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray | None:
        if not name:
            return None
        if name in values:
            return values[name]
        t = graph.tensors[name]
        if t.is_const:
            if name not in consts:
                consts[name] = constant_value(t)
            return consts[name]
        raise McuforgeError(f"run_float: tensor '{name}' is used before it is computed")

    for node in graph.nodes:
        y = _run_node(node, [get(i) for i in node.inputs])
        want = graph.tensors[node.outputs[0]].shape
        if y.shape != want:
            raise McuforgeError(f"run_float: node {node.name} ({node.op}) produced shape {y.shape}, "
                                f"the graph says {want}")
        quant = graph.tensors[node.outputs[0]].quant
        if fake_quant and quant is not None and quant.per_tensor:
            y = fake_quantize(y, quant)
        values[node.outputs[0]] = y
        if on_node is not None:
            on_node(node, y)
    return {k: v.astype(np.float32) for k, v in values.items()}
