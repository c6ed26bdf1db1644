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
from .quantize import FIXED_OUTPUT_QUANT, clamp_range

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


def _conv_geometry(node: Node, g: Graph) -> dict:
    """Sizes, kernel, strides and leading pads of a conv2d / transpose_conv
    (filter (out_c, k_h, k_w, in_c))."""
    x, out, w = (g.tensors[n] for n in (node.inputs[0], node.outputs[0], node.inputs[1]))
    (in_h, in_w, in_c), (out_h, out_w, out_c) = _hw_c(x.shape), _hw_c(out.shape)
    a = node.attrs
    return dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=w.shape[1],
                k_w=w.shape[2], stride_h=a["strides"][0], stride_w=a["strides"][1])


def lower_conv2d(node: Node, g: Graph) -> Step:
    a = node.attrs
    p = _conv_geometry(node, g)
    p.update(dilation_h=a.get("dilations", (1, 1))[0], dilation_w=a.get("dilations", (1, 1))[1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], **_weights(g, node))
    return Step(node, "conv2d_s8", p, [node.inputs[0]], [node.outputs[0]],
                macs=p["out_h"] * p["out_w"] * p["out_c"] * p["k_h"] * p["k_w"] * p["in_c"],
                weight_bytes=_const_bytes(p))


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
    if a.is_const or b.is_const:
        return lower_binary(node, g)
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
    if "raw_clamp" in node.attrs:  # TFLM RELU6: the input's bytes clamped, never requantized
        p.update(input_offset=0, output_offset=0, multiplier=IDENTITY_MULTIPLIER, shift=IDENTITY_SHIFT)
        p["act_min"], p["act_max"] = (int(v) for v in node.attrs["raw_clamp"])
    if node.attrs.get("float32_ratio"):  # TFLite RELU: the scale ratio divided in float32
        p["multiplier"], p["shift"] = fp.quantize_multiplier(fp.f32div(float(x.quant.scale[0]),
                                                                      float(out.quant.scale[0])))
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


def _lead_to_4d(node: Node, op: str, shape: tuple) -> int:
    """How many leading 1s make `shape` 4-D (the kernels' rank); rank > 4 is refused."""
    if len(shape) > 4:
        raise UnsupportedModelError(f"node '{node.name}' ({op}): rank {len(shape)} > 4 is not supported")
    return 4 - len(shape)


def lower_transpose(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    lead = _lead_to_4d(node, "transpose", x.shape)
    shape = [1] * lead + list(x.shape)
    perm = list(range(lead)) + [lead + int(p) for p in node.attrs["perm"]]
    p = dict(in_shape=np.array(shape, dtype=np.int32), perm=np.array(perm, dtype=np.int32))
    return Step(node, "transpose_s8", p, [x.name], [out.name])


# ---- int8 -> int8 elementwise ops: one table each (mcf_lut_s8) --------------


def _qparams(q: Quant) -> tuple[float, int]:
    return float(q.scale[0]), int(q.zero_point[0])


def unary_table(node: Node, in_q: Quant, out_q: Quant) -> np.ndarray:
    """The 256 outputs of a unary op, with TFLM's integer arithmetic (see
    fixedpoint); ops TFLite has no int8 kernel for (hard_sigmoid) from the
    float function. LOGISTIC / TANH write their fixed output quantization;
    other output parameters (an ONNX model's) get a requantization."""
    s_in, z_in = _qparams(in_q)
    s_out, z_out = _qparams(out_q)
    op, a = node.op, node.attrs
    if op == "hard_swish":
        return fp.hard_swish_table(s_in, z_in, s_out, z_out)
    if op == "leaky_relu":
        return fp.leaky_relu_table(s_in, z_in, s_out, z_out, float(a["alpha"]))
    if op == "hard_sigmoid":
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        return fp.float_function_table(lambda v: np.clip(alpha * v + beta, 0.0, 1.0), s_in, z_in, s_out, z_out)
    if op in FIXED_OUTPUT_QUANT:
        table = fp.logistic_table(s_in, z_in) if op == "logistic" else fp.tanh_table(s_in, z_in)
        fixed_scale, fixed_zp = FIXED_OUTPUT_QUANT[op]
        if (s_out, z_out) != (fixed_scale, fixed_zp):
            table = fp.requantize_table(table, fixed_scale, fixed_zp, s_out, z_out)
        return table
    raise McuforgeError(f"node '{node.name}': no table for op {op}")


def _lut_step(node: Node, g: Graph, x: str, table: np.ndarray) -> Step:
    out = g.tensors[node.outputs[0]]
    p = dict(size=out.size, table=np.ascontiguousarray(table, dtype=np.int8))
    return Step(node, "lut_s8", p, [x], [out.name], macs=out.size, weight_bytes=256, inplace="elementwise")


def lower_unary(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    try:
        table = unary_table(node, x.quant, out.quant)
    except ValueError as err:  # parameters TFLM itself refuses (e.g. hard-swish's output scale)
        raise McuforgeError(f"node '{node.name}' ({node.op}): {err}") from None
    return _lut_step(node, g, x.name, table)


# ---- binary elementwise ops, with broadcasting ---------------------------------

def broadcast_params(node: Node, a_shape: tuple[int, ...], b_shape: tuple[int, ...],
                     out_shape: tuple[int, ...]) -> dict:
    """size/broadcast/out_shape/strides of mcf_mul_params and its kin (4-D,
    leading axes padded with 1)."""
    size = int(np.prod(out_shape, dtype=np.int64))
    if tuple(a_shape) == tuple(b_shape) == tuple(out_shape):
        zeros = np.zeros(4, np.int32)
        return dict(size=size, broadcast=0, out_shape=zeros, input1_stride=zeros, input2_stride=zeros)
    rank = len(out_shape)
    if rank > 4 or len(a_shape) > rank or len(b_shape) > rank:
        raise UnsupportedModelError(f"node '{node.name}' ({node.op}): broadcasting {a_shape} with {b_shape} "
                                    f"to rank {rank} is not supported (rank 4 at most)")
    out4 = [1] * (4 - rank) + list(out_shape)

    def strides(shape: tuple[int, ...]) -> np.ndarray:
        dims = [1] * (4 - len(shape)) + list(shape)
        st = [0] * 4
        step = 1
        for d in range(3, -1, -1):
            if dims[d] != out4[d] and dims[d] != 1:
                raise UnsupportedModelError(f"node '{node.name}' ({node.op}): shapes {a_shape} and {b_shape} "
                                            f"do not broadcast to {out_shape}")
            st[d] = step if dims[d] > 1 else 0
            step *= dims[d]
        return np.array(st, np.int32)

    return dict(size=size, broadcast=1, out_shape=np.array(out4, np.int32),
                input1_stride=strides(a_shape), input2_stride=strides(b_shape))


def _binary_quant_params(node: Node, qa: Quant, qb: Quant, qo: Quant) -> tuple[str, dict]:
    """(kernel, quantization fields) of a binary op, as TFLM prepares them."""
    (sa, za), (sb, zb), (so, zo) = _qparams(qa), _qparams(qb), _qparams(qo)
    act_min, act_max = clamp_range(node.attrs, qo)
    if node.op == "mul":
        m, s = fp.quantize_multiplier(sa * sb / so)
        return "mul_s8", dict(input1_offset=-za, input2_offset=-zb, output_offset=zo, multiplier=m, shift=s,
                              act_min=act_min, act_max=act_max)
    if node.op == "sub":
        return "sub_s8", fp.sub_params(sa, za, sb, zb, so, zo, act_min=act_min, act_max=act_max)
    if node.op == "add":
        return "add_s8", fp.add_params(sa, za, sb, zb, so, zo, act_min=act_min, act_max=act_max)
    p: dict = {"output_offset": zo}
    for k, (s_in, z_in) in ((1, (sa, za)), (2, (sb, zb))):
        m, s = (IDENTITY_MULTIPLIER, IDENTITY_SHIFT) if s_in == so else fp.quantize_multiplier(s_in / so)
        p.update({f"input{k}_offset": -z_in, f"input{k}_multiplier": m, f"input{k}_shift": s})
    return f"{node.op}_s8", p


def lower_binary(node: Node, g: Graph) -> Step:
    """mul / sub / maximum / minimum (and add with a constant): two activations
    with broadcasting, or one activation and a scalar constant (a table)."""
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    kernel, q = _binary_quant_params(node, a.quant, b.quant, out.quant)
    if a.is_const or b.is_const:
        const, act = (a, b) if a.is_const else (b, a)
        if const.size != 1 or act.is_const:
            raise UnsupportedModelError(f"node '{node.name}' ({node.op}): a constant operand must be a single "
                                        f"value (got shape {const.shape})")
        c = np.full(256, int(np.asarray(const.data).reshape(-1)[0]), np.int8)
        x = fp.INT8_VALUES.astype(np.int8)
        shape = broadcast_params(node, (256,), (256,), (256,))
        from .kernels import KERNELS

        args = (c, x) if a.is_const else (x, c)
        table = KERNELS[kernel]({**shape, **q}, *args)
        return _lut_step(node, g, act.name, table)
    p = {**broadcast_params(node, a.shape, b.shape, out.shape), **q}
    return Step(node, kernel, p, [a.name, b.name], [out.name], macs=out.size, inplace="elementwise")


# ---- slicing, resizing, transposed convolution --------------------------------

def lower_strided_slice(node: Node, g: Graph) -> Step:
    """attrs begin / strides / counts per axis of the input (resolved by the frontend)."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    lead = _lead_to_4d(node, "strided_slice", x.shape)
    a = node.attrs
    p = dict(in_shape=np.array([1] * lead + list(x.shape), np.int32),
             begin=np.array([0] * lead + list(a["begin"]), np.int32),
             stride=np.array([1] * lead + list(a["strides"]), np.int32),
             out_shape=np.array([1] * lead + list(a["counts"]), np.int32))
    if int(np.prod(p["out_shape"])) != out.size:
        raise McuforgeError(f"node '{node.name}' (strided_slice): slice of {tuple(a['counts'])} does not fill "
                            f"the output {out.shape}")
    return Step(node, "strided_slice_s8", p, [x.name], [out.name])


def lower_resize_nearest(node: Node, g: Graph) -> Step:
    """attrs row_index / col_index: the input row / column of each output row / column."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    in_h, in_w, c = _hw_c(x.shape)
    out_h, out_w, _ = _hw_c(out.shape)
    p = dict(in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w,
             row_index=np.asarray(node.attrs["row_index"], np.int32),
             col_index=np.asarray(node.attrs["col_index"], np.int32))
    if not x.quant.same_as(out.quant):
        raise McuforgeError(f"node '{node.name}' (resize_nearest): input and output quantization differ")
    return Step(node, "resize_nearest_s8", p, [x.name], [out.name], weight_bytes=4 * (out_h + out_w))


def lower_transpose_conv(node: Node, g: Graph) -> Step:
    p = _conv_geometry(node, g)
    p.update(pad_top=node.attrs["pads"][0], pad_left=node.attrs["pads"][1], **_weights(g, node))
    return Step(node, "transpose_conv_s8", p, [node.inputs[0]], [node.outputs[0]],
                macs=p["in_h"] * p["in_w"] * p["in_c"] * p["k_h"] * p["k_w"] * p["out_c"],
                weight_bytes=_const_bytes(p))


# ---- broadcasting and constant operands, PRELU, reductions over any axes ---------

BINARY_KINDS = {"add": 0, "sub": 1, "mul": 2, "prelu": 3}  # MCF_BINARY_* of mcf_binary_params


def binary_fields(node: Node, qa: Quant, qb: Quant, qo: Quant) -> dict:
    """Every quantization field of mcf_binary_params for node.op (add, sub,
    mul, prelu), as TFLM prepares them; fields the kind does not read are 0."""
    (sa, za), (sb, zb), (so, zo) = _qparams(qa), _qparams(qb), _qparams(qo)
    act_min, act_max = clamp_range(node.attrs, qo)
    p = dict(left_shift=0, input1_offset=-za, input1_multiplier=0, input1_shift=0, input2_offset=-zb,
             input2_multiplier=0, input2_shift=0, output_offset=zo, output_multiplier=0, output_shift=0,
             act_min=act_min, act_max=act_max)
    if node.op in ("add", "sub"):
        make = fp.add_params if node.op == "add" else fp.sub_params
        p.update(make(sa, za, sb, zb, so, zo, act_min=act_min, act_max=act_max))
    elif node.op == "mul":
        p["output_multiplier"], p["output_shift"] = fp.quantize_multiplier(sa * sb / so)
    elif node.op == "prelu":  # TFLM CalculatePreluParams: both ratios in double
        p["input1_multiplier"], p["input1_shift"] = fp.quantize_multiplier(sa / so)
        p["output_multiplier"], p["output_shift"] = fp.quantize_multiplier(sa * sb / so)
        p["act_min"], p["act_max"] = -128, 127
    else:
        raise McuforgeError(f"node '{node.name}': no binary kernel for op {node.op}")
    return p


def lower_binary_broadcast(node: Node, g: Graph) -> Step:
    """add / sub / mul / prelu on (1, H, W, C) with a per-channel (or any
    broadcasting) operand: both activations (mcf_binary_s8), or one a
    constant kept in flash (mcf_binary_const_s8, e.g. a BatchNormalization
    left alone, PRELU's alpha)."""
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a.is_const and b.is_const:
        raise UnsupportedModelError(f"node '{node.name}' ({node.op}): both operands are constants")
    for t in (a, b):
        if t.quant is None or np.asarray(t.quant.scale).size != 1:
            raise UnsupportedModelError(f"node '{node.name}' ({node.op}): operand '{t.name}' must be quantized per "
                                        f"tensor (one scale and zero point)")
    p = dict(kind=BINARY_KINDS[node.op], constant_first=int(a.is_const),
             **broadcast_params(node, a.shape, b.shape, out.shape), **binary_fields(node, a.quant, b.quant, out.quant))
    if p["size"] != out.size:
        raise UnsupportedModelError(f"node '{node.name}' ({node.op}): shapes {a.shape} and {b.shape} do not "
                                    f"broadcast to the output {out.shape}")
    if a.is_const or b.is_const:
        const, act = (a, b) if a.is_const else (b, a)
        if np.asarray(const.data).dtype != np.int8:
            raise UnsupportedModelError(f"node '{node.name}' ({node.op}): constant '{const.name}' is not int8")
        p["constant"] = np.ascontiguousarray(np.asarray(const.data).astype(np.int8).reshape(-1))
        if not p["broadcast"]:  # the constant is indexed, never sliced row by row (a patch stage would)
            dims = [1] * (4 - len(out.shape)) + list(out.shape)
            strides = [int(np.prod(dims[d + 1:])) if dims[d] > 1 else 0 for d in range(4)]
            p.update(broadcast=1, out_shape=np.array(dims, np.int32), input1_stride=np.array(strides, np.int32),
                     input2_stride=np.array(strides, np.int32))
        inplace = "elementwise" if act.size == out.size else ""
        return Step(node, "binary_const_s8", p, [act.name], [out.name], macs=out.size,
                    weight_bytes=const.size, inplace=inplace)
    return Step(node, "binary_s8", p, [a.name, b.name], [out.name], macs=out.size, inplace="elementwise")


def lower_add_any(node: Node, g: Graph) -> Step:
    """add: same shapes (mcf_add_s8), a scalar constant (a table), else broadcasting."""
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if (a.is_const and a.size == 1) or (b.is_const and b.size == 1):
        return lower_binary(node, g)
    if a.is_const or b.is_const or a.shape != b.shape or a.shape != out.shape:
        return lower_binary_broadcast(node, g)
    return lower_add(node, g)


def lower_binary_any(node: Node, g: Graph) -> Step:
    """mul / sub: a constant operand of more than one value goes to mcf_binary_const_s8."""
    a, b = g.tensors[node.inputs[0]], g.tensors[node.inputs[1]]
    if (a.is_const and a.size > 1) or (b.is_const and b.size > 1):
        return lower_binary_broadcast(node, g)
    return lower_binary(node, g)


def lower_reduce(node: Node, g: Graph) -> Step:
    """mean over any axes (mean_s8 keeps the (1, H, W, C) spatial mean),
    reduce_max (TFLM: the raw values, same quantization in and out)."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    axes = tuple(sorted(a % len(x.shape) for a in node.attrs["axes"]))
    if node.op == "mean" and len(x.shape) == 4 and axes == (1, 2):
        return lower_mean(node, g)
    lead = _lead_to_4d(node, node.op, x.shape)
    reduced = [0] * lead + [int(d in axes) for d in range(len(x.shape))]
    in_shape = [1] * lead + list(x.shape)
    count = int(np.prod([n for n, r in zip(in_shape, reduced) if r], dtype=np.int64))
    p = dict(kind=0 if node.op == "mean" else 1, in_shape=np.array(in_shape, np.int32),
             reduce=np.array(reduced, np.int32), input_offset=0, output_offset=0, multiplier=0, shift=0)
    if node.op == "mean":
        p.update(fp.mean_params(float(x.quant.scale[0]), int(x.quant.zero_point[0]),
                                float(out.quant.scale[0]), int(out.quant.zero_point[0]), count))
    elif not x.quant.same_as(out.quant):
        raise UnsupportedModelError(f"node '{node.name}' (reduce_max): input and output quantization differ")
    return Step(node, "reduce_s8", p, [x.name], [out.name], macs=x.size)


def lower_tile(node: Node, g: Graph) -> Step:
    """attrs multiples per axis of the input (a byte copy: same quantization in and out)."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    if not x.quant.same_as(out.quant):
        raise UnsupportedModelError(f"node '{node.name}' (tile): input and output quantization differ")
    # axes of size 1 that are not repeated change nothing: a rank-5 (1, H, 1, W, C) of tf.repeat fits 4-D
    dims = [(d, int(m)) for d, m in zip(x.shape, node.attrs["multiples"]) if (d, int(m)) != (1, 1)]
    lead = _lead_to_4d(node, "tile", tuple(dims))
    dims = [(1, 1)] * lead + dims
    p = dict(in_shape=np.array([d for d, _ in dims], np.int32), multiples=np.array([m for _, m in dims], np.int32))
    return Step(node, "tile_s8", p, [x.name], [out.name])


def describe_step(step: Step, graph: Graph) -> str:
    """One-line human description of a layer, for comments and reports."""
    t = graph.tensors
    shape = lambda n: "x".join(str(d) for d in t[n].shape[1:])  # noqa: E731
    a = step.node.attrs
    extra = ""
    if "kernel" in a or step.node.op in ("conv2d", "depthwise_conv2d", "transpose_conv"):
        if step.node.op in ("conv2d", "depthwise_conv2d", "transpose_conv"):
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
    "add": OpSpec(lower_add_any),
    "avg_pool": OpSpec(lambda n, g: _pool(n, g, "avg_pool_s8")),
    "max_pool": OpSpec(lambda n, g: _pool(n, g, "max_pool_s8")),
    "mean": OpSpec(lower_reduce),
    "reduce_max": OpSpec(lower_reduce),
    "prelu": OpSpec(lower_binary_broadcast),
    "tile": OpSpec(lower_tile),
    "softmax": OpSpec(lower_softmax),
    "clamp": OpSpec(lower_clamp),
    "concat": OpSpec(lower_concat),
    "pad": OpSpec(lower_pad),
    "transpose": OpSpec(lower_transpose),
    "reshape": OpSpec(None, alias=True),
    "hard_swish": OpSpec(lower_unary),
    "hard_sigmoid": OpSpec(lower_unary),
    "logistic": OpSpec(lower_unary),
    "tanh": OpSpec(lower_unary),
    "leaky_relu": OpSpec(lower_unary),
    "mul": OpSpec(lower_binary_any),
    "sub": OpSpec(lower_binary_any),
    "maximum": OpSpec(lower_binary),
    "minimum": OpSpec(lower_binary),
    "strided_slice": OpSpec(lower_strided_slice),
    "resize_nearest": OpSpec(lower_resize_nearest),
    "transpose_conv": OpSpec(lower_transpose_conv),
}


def check_supported(graph: Graph) -> None:
    """One error listing every node the compiler cannot handle."""
    bad = [f"{n.name} ({n.op})" for n in graph.nodes if n.op not in OPS]
    if bad:
        raise UnsupportedModelError(
            f"{graph.source or graph.name}: {len(bad)} unsupported node(s): {', '.join(bad)}; "
            "replace them or remove them from the model before compiling")
