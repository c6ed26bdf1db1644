"""Each canonical op, declared once: its kernel, its parameters, its cost and
whether it may run in place.

`lower(node, graph)` turns a quantized node into a `Step`: the runtime
kernel to call and that kernel's parameter struct as a dict whose keys are
exactly the C struct's field names (runtime/include/mcuforge/kernels.h).
The NumPy reference and the C emitter both read that dict; neither derives
shapes or multipliers again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import fixedpoint as fp
from .ir import Graph, McuforgeError, Node, Quant, UnsupportedModelError
from .quantize import clamp_range

IDENTITY_MULTIPLIER, IDENTITY_SHIFT = fp.quantize_multiplier(1.0)


@dataclass
class Step:
    """One kernel call of the schedule."""

    node: Node
    kernel: str  # runtime function name without the mcf_ prefix
    params: dict
    inputs: list[str]  # activation tensors read (arena)
    outputs: list[str]  # activation tensors written (arena)
    macs: int = 0
    weight_bytes: int = 0  # constant bytes this layer adds to flash (weights, bias, multipliers)
    inplace: str = ""  # "" | "depthwise" | "elementwise": what in-place form the op allows
    inplace_input: int = -1  # set by the planner: index of the input whose buffer the output reuses
    scratch: int = 0  # bytes of scratch, set by the planner
    index: int = 0

    @property
    def name(self) -> str:
        return self.node.name


def _hw_c(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 2:
        return 1, 1, shape[1]
    raise McuforgeError(f"expected a (1,H,W,C) or (1,N) tensor, got {shape}")


def _requant(in_q: Quant, out_q: Quant) -> tuple[int, int]:
    return fp.quantize_multiplier(float(in_q.scale[0]) / float(out_q.scale[0]))


def _channel_multipliers(in_q: Quant, w_q: Quant, out_q: Quant) -> tuple[np.ndarray, np.ndarray]:
    real = float(in_q.scale[0]) * np.asarray(w_q.scale, dtype=np.float64) / float(out_q.scale[0])
    mult, shift = fp.quantize_multiplier_array(real)
    return np.asarray(mult, dtype=np.int32), np.asarray(shift, dtype=np.int32)


def _weights(graph: Graph, node: Node) -> dict:
    t = graph.tensors
    x, w, out = t[node.inputs[0]], t[node.inputs[1]], t[node.outputs[0]]
    bias = t[node.inputs[2]].data.astype(np.int32) if len(node.inputs) > 2 and node.inputs[2] else None
    mult, shift = _channel_multipliers(x.quant, w.quant, out.quant)
    act_min, act_max = clamp_range(node.attrs, out.quant)
    return dict(
        input_offset=-int(x.quant.zero_point[0]),
        output_offset=int(out.quant.zero_point[0]),
        act_min=act_min, act_max=act_max,
        per_channel=int(len(mult) > 1),
        filter=np.ascontiguousarray(w.data.astype(np.int8)),
        bias=bias, multiplier=mult, shift=shift,
    )


def _const_bytes(p: dict) -> int:
    n = 0
    for k in ("filter", "bias", "multiplier", "shift"):
        if p.get(k) is not None:
            n += p[k].nbytes
    return n


def lower_conv2d(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    w = g.tensors[node.inputs[1]]
    in_h, in_w, in_c = _hw_c(x.shape)
    out_h, out_w, out_c = _hw_c(out.shape)
    o, k_h, k_w, i = w.shape
    a = node.attrs
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h, k_w=k_w,
             stride_h=a["strides"][0], stride_w=a["strides"][1],
             dilation_h=a.get("dilations", (1, 1))[0], dilation_w=a.get("dilations", (1, 1))[1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], **_weights(g, node))
    return Step(node, "conv2d_s8", p, [x.name], [out.name],
                macs=out_h * out_w * out_c * k_h * k_w * in_c, weight_bytes=_const_bytes(p))


def lower_depthwise(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    w = g.tensors[node.inputs[1]]
    in_h, in_w, in_c = _hw_c(x.shape)
    out_h, out_w, out_c = _hw_c(out.shape)
    _, k_h, k_w, _ = w.shape
    a = node.attrs
    mult = a.get("depth_multiplier", out_c // in_c)
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, depth_multiplier=mult,
             k_h=k_h, k_w=k_w, stride_h=a["strides"][0], stride_w=a["strides"][1],
             dilation_h=a.get("dilations", (1, 1))[0], dilation_w=a.get("dilations", (1, 1))[1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], **_weights(g, node))
    inplace = "depthwise" if mult == 1 and out_h * out_w <= in_h * in_w else ""
    return Step(node, "depthwise_conv2d_s8", p, [x.name], [out.name],
                macs=out_h * out_w * out_c * k_h * k_w, weight_bytes=_const_bytes(p), inplace=inplace)


def lower_fully_connected(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    w = g.tensors[node.inputs[1]]
    n, k = w.shape
    rows = x.size // k
    p = dict(rows=rows, in_features=k, out_features=n, **_weights(g, node))
    return Step(node, "fully_connected_s8", p, [x.name], [out.name],
                macs=rows * n * k, weight_bytes=_const_bytes(p))


def lower_add(node: Node, g: Graph) -> Step:
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a.shape != b.shape or a.shape != out.shape:
        raise UnsupportedModelError(f"node '{node.name}' (add): broadcasting {a.shape} + {b.shape} is not supported")
    p = fp.add_params(float(a.quant.scale[0]), int(a.quant.zero_point[0]),
                      float(b.quant.scale[0]), int(b.quant.zero_point[0]),
                      float(out.quant.scale[0]), int(out.quant.zero_point[0]))
    p = dict(p)
    p["size"] = out.size
    p["act_min"], p["act_max"] = clamp_range(node.attrs, out.quant)
    return Step(node, "add_s8", p, [a.name, b.name], [out.name], macs=out.size, inplace="elementwise")


def _pool(node: Node, g: Graph, kernel: str) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    in_h, in_w, c = _hw_c(x.shape)
    out_h, out_w, _ = _hw_c(out.shape)
    a = node.attrs
    act_min, act_max = clamp_range(a, out.quant)
    p = dict(in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w,
             k_h=a["kernel"][0], k_w=a["kernel"][1], stride_h=a["strides"][0], stride_w=a["strides"][1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], act_min=act_min, act_max=act_max,
             requantize=0, input_offset=0, output_offset=0,
             multiplier=IDENTITY_MULTIPLIER, shift=IDENTITY_SHIFT)
    if not x.quant.same_as(out.quant):
        if kernel == "max_pool_s8":
            raise McuforgeError(f"node '{node.name}' (max_pool): input and output quantization differ")
        m, s = _requant(x.quant, out.quant)
        p.update(requantize=1, input_offset=-int(x.quant.zero_point[0]),
                 output_offset=int(out.quant.zero_point[0]), multiplier=m, shift=s)
    return Step(node, kernel, p, [x.name], [out.name], macs=out_h * out_w * c * p["k_h"] * p["k_w"])


def lower_mean(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    axes = tuple(sorted(a % len(x.shape) for a in node.attrs["axes"]))
    if len(x.shape) != 4 or axes != (1, 2):
        raise UnsupportedModelError(f"node '{node.name}' (mean): only the mean over height and width is supported, "
                                    f"got axes {axes} of {x.shape}")
    in_h, in_w, c = _hw_c(x.shape)
    p = dict(in_h=in_h, in_w=in_w, channels=c)
    p.update(fp.mean_params(float(x.quant.scale[0]), int(x.quant.zero_point[0]),
                            float(out.quant.scale[0]), int(out.quant.zero_point[0]), in_h * in_w))
    return Step(node, "mean_s8", p, [x.name], [out.name], macs=x.size)


def lower_softmax(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    cols = x.shape[-1]
    mult, left_shift = fp.preprocess_softmax_scaling(float(node.attrs.get("beta", 1.0)), float(x.quant.scale[0]), 5)
    diff_min = -int(fp.calculate_input_radius(5, left_shift, 31))
    p = dict(rows=x.size // cols, cols=cols, input_multiplier=int(mult), input_left_shift=int(left_shift),
             diff_min=diff_min)
    return Step(node, "softmax_s8", p, [x.name], [out.name], macs=x.size, inplace="elementwise")


def _requant_params(in_q: Quant, out_q: Quant, size: int, act: tuple[int, int] = (-128, 127)) -> dict:
    m, s = _requant(in_q, out_q)
    return dict(size=size, input_offset=-int(in_q.zero_point[0]), output_offset=int(out_q.zero_point[0]),
                multiplier=m, shift=s, act_min=act[0], act_max=act[1])


def lower_clamp(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    p = _requant_params(x.quant, out.quant, out.size, clamp_range(node.attrs, out.quant))
    return Step(node, "requantize_s8", p, [x.name], [out.name], macs=out.size, inplace="elementwise")


def lower_concat(node: Node, g: Graph) -> Step:
    out = g.tensors[node.outputs[0]]
    axis = node.attrs["axis"] % len(out.shape)
    ins = [g.tensors[n] for n in node.inputs]
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = np.array([int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins], dtype=np.int32)
    requant = [_requant_params(t.quant, out.quant, 0) for t in ins]
    p = dict(num_inputs=len(ins), outer=outer, inner=inner, requant=requant)
    return Step(node, "concat_s8", p, [t.name for t in ins], [out.name], macs=out.size)


def lower_pad(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    pads = list(node.attrs["pads"])
    if len(x.shape) == 2:
        pads = [(0, 0), (0, 0), (0, 0), pads[1]]
    elif len(x.shape) != 4:
        raise UnsupportedModelError(f"node '{node.name}' (pad): rank {len(x.shape)} is not supported")
    if tuple(pads[0]) != (0, 0):
        raise UnsupportedModelError(f"node '{node.name}' (pad): padding the batch axis is not supported")
    in_h, in_w, in_c = _hw_c(x.shape)
    value = float(node.attrs.get("value", 0.0))
    pad_value = int(np.clip(out.quant.zero_point[0] + np.round(value / out.quant.scale[0]), -128, 127))
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, pad_top=pads[1][0], pad_bottom=pads[1][1],
             pad_left=pads[2][0], pad_right=pads[2][1], pad_front=pads[3][0], pad_back=pads[3][1],
             pad_value=pad_value)
    return Step(node, "pad_s8", p, [x.name], [out.name])


def lower_transpose(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    rank = len(x.shape)
    if rank > 4:
        raise UnsupportedModelError(f"node '{node.name}' (transpose): rank {rank} > 4 is not supported")
    lead = 4 - rank
    shape = [1] * lead + list(x.shape)
    perm = list(range(lead)) + [lead + int(p) for p in node.attrs["perm"]]
    p = dict(in_shape=np.array(shape, dtype=np.int32), perm=np.array(perm, dtype=np.int32))
    return Step(node, "transpose_s8", p, [x.name], [out.name])


def describe_step(step: Step, graph: Graph) -> str:
    """One-line human description of a layer, for comments and reports."""
    t = graph.tensors
    shape = lambda n: "x".join(str(d) for d in t[n].shape[1:])  # noqa: E731
    a = step.node.attrs
    extra = ""
    if "kernel" in a or step.node.op in ("conv2d", "depthwise_conv2d"):
        if step.node.op in ("conv2d", "depthwise_conv2d"):
            w = t[step.node.inputs[1]].shape
            k = (w[1], w[2])
        else:
            k = tuple(a["kernel"])
        extra = f" {k[0]}x{k[1]}/{a['strides'][0]}" + (f",{a['strides'][1]}" if a["strides"][1] != a["strides"][0] else "")
    ins = ", ".join(shape(i) for i in step.inputs)
    note = " (in place)" if step.inplace_input >= 0 else ""
    return f"{step.node.op}{extra} {ins} -> {shape(step.outputs[0])}{note}"


@dataclass(frozen=True)
class OpSpec:
    lower: Callable[[Node, Graph], Step] | None  # None: no kernel (an alias)
    alias: bool = False


OPS: dict[str, OpSpec] = {
    "conv2d": OpSpec(lower_conv2d),
    "depthwise_conv2d": OpSpec(lower_depthwise),
    "fully_connected": OpSpec(lower_fully_connected),
    "add": OpSpec(lower_add),
    "avg_pool": OpSpec(lambda n, g: _pool(n, g, "avg_pool_s8")),
    "max_pool": OpSpec(lambda n, g: _pool(n, g, "max_pool_s8")),
    "mean": OpSpec(lower_mean),
    "softmax": OpSpec(lower_softmax),
    "clamp": OpSpec(lower_clamp),
    "concat": OpSpec(lower_concat),
    "pad": OpSpec(lower_pad),
    "transpose": OpSpec(lower_transpose),
    "reshape": OpSpec(None, alias=True),
}


def check_supported(graph: Graph) -> None:
    """One error listing every node the compiler cannot handle."""
    bad = [f"{n.name} ({n.op})" for n in graph.nodes if n.op not in OPS]
    if bad:
        raise UnsupportedModelError(
            f"{graph.source or graph.name}: {len(bad)} unsupported node(s): {', '.join(bad)}; "
            "replace them or remove them from the model before compiling")
