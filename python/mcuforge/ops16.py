"""Lowering of nodes with int16 activations (TFLite 16x8 models) to Steps.

A 16x8 model keeps activations in int16 with zero point 0, weights in int8
(symmetric, per channel) and biases in int64. A node is lowered here when
any of its activation tensors is int16 (plan.lower dispatches); the kernels
are the ``*_s16`` ones (kernels/s16.py and runtime/src/mcf_s16_*.c), plus
the QUANTIZE conversions between int8 and int16 (``requantize_s8_s16``,
``requantize_s16_s8``).

Parameter dicts follow the same rule as ops.py: keys are exactly the C
struct's field names (runtime/include/mcuforge/kernels_s16.h).
"""
from __future__ import annotations

import numpy as np

from . import fixedpoint as fp
from .ir import Graph, McuforgeError, Node, Quant, UnsupportedModelError
from .ops import Step, broadcast_params, lower_strided_slice
from .quantize import round_half_away

INT16_MIN, INT16_MAX = -32768, 32767
ACC_LIMIT = 1 << 47  # TFLM's int64 requantization assumes |acc| < 2^47


def is_int16(node: Node, g: Graph) -> bool:
    """Does the node read or write an int16 activation?"""
    names = [n for n in node.inputs + node.outputs if n]
    return any(g.tensors[n].dtype == "int16" and not g.tensors[n].is_const for n in names)


def clamp_range16(attrs: dict, quant: Quant) -> tuple[int, int]:
    """The int16 clamp of a fused activation (TFLite CalculateActivationRangeQuantized)."""
    scale, zp = float(quant.scale[0]), int(quant.zero_point[0])
    lo, hi = INT16_MIN, INT16_MAX
    a_min, a_max = attrs.get("act_min", -np.inf), attrs.get("act_max", np.inf)
    if np.isfinite(a_min):
        lo = max(lo, zp + int(round_half_away(a_min / scale)))
    if np.isfinite(a_max):
        hi = min(hi, zp + int(round_half_away(a_max / scale)))
    return lo, hi


def _hw_c(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 2:
        return 1, 1, shape[1]
    raise McuforgeError(f"expected a (1,H,W,C) or (1,N) tensor, got {shape}")


def _where(g: Graph) -> str:
    return g.source or g.name


def _require_int16(node: Node, g: Graph, names: list[str]) -> None:
    for n in names:
        t = g.tensors[n]
        if t.dtype != "int16":
            raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): tensor '{n}' is {t.dtype}; "
                                        f"this op's 16x8 kernel reads and writes int16 (mixed int8/int16 operands "
                                        f"are not supported)")


def _conv_weights(node: Node, g: Graph, channel_axis: int) -> dict:
    """Filter, int64 bias, per-channel multipliers and the int16 clamp of a conv-like node."""
    t = g.tensors
    x, w, out = t[node.inputs[0]], t[node.inputs[1]], t[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        bias = np.ascontiguousarray(t[node.inputs[2]].data.astype(np.int64).reshape(-1))
    real = float(x.quant.scale[0]) * np.asarray(w.quant.scale, dtype=np.float64) / float(out.quant.scale[0])
    mult, shift = fp.quantize_multiplier_array(real)
    if np.any(shift > 7) or np.any(mult < 0):
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): a scale ratio of "
                                    f"{float(real.max()):.4g} is beyond the 2^7 TFLM's 16x8 kernels allow")
    lo, hi = clamp_range16(node.attrs, out.quant)
    filt = np.ascontiguousarray(w.data.astype(np.int8))
    # |acc| <= 32768 * sum |w| + |bias| must stay below 2^47 (TFLM's int64 requantization)
    wa = np.abs(filt.astype(np.int64))
    sums = np.moveaxis(wa, channel_axis, 0).reshape(wa.shape[channel_axis], -1).sum(axis=1) \
        if w.quant.axis is not None else np.array([wa.sum()])
    bound = sums * 32768 + (np.abs(bias) if bias is not None and bias.size == sums.size else 0)
    if np.any(bound >= ACC_LIMIT):
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): its accumulator can reach "
                                    f"{int(bound.max()):,} >= 2^47, beyond TFLM's 16x8 requantization")
    return dict(act_min=lo, act_max=hi, per_channel=int(len(mult) > 1), filter=filt, bias=bias,
                multiplier=np.asarray(mult, np.int32), shift=np.asarray(shift, np.int32))


def _const_bytes(p: dict) -> int:
    return sum(p[k].nbytes for k in ("filter", "bias", "multiplier", "shift") if p.get(k) is not None)


def lower_conv2d16(node: Node, g: Graph) -> Step:
    x, out, w = (g.tensors[n] for n in (node.inputs[0], node.outputs[0], node.inputs[1]))
    (in_h, in_w, in_c), (out_h, out_w, out_c) = _hw_c(x.shape), _hw_c(out.shape)
    a = node.attrs
    dil = a.get("dilations", (1, 1))
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=w.shape[1], k_w=w.shape[2],
             stride_h=a["strides"][0], stride_w=a["strides"][1], dilation_h=dil[0], dilation_w=dil[1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], **_conv_weights(node, g, 0))
    return Step(node, "conv2d_s16", p, [x.name], [out.name],
                macs=out_h * out_w * out_c * p["k_h"] * p["k_w"] * in_c, weight_bytes=_const_bytes(p))


def lower_depthwise16(node: Node, g: Graph) -> Step:
    x, out, w = (g.tensors[n] for n in (node.inputs[0], node.outputs[0], node.inputs[1]))
    (in_h, in_w, in_c), (out_h, out_w, out_c) = _hw_c(x.shape), _hw_c(out.shape)
    a = node.attrs
    dil = a.get("dilations", (1, 1))
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c,
             depth_multiplier=a.get("depth_multiplier", out_c // in_c), k_h=w.shape[1], k_w=w.shape[2],
             stride_h=a["strides"][0], stride_w=a["strides"][1], dilation_h=dil[0], dilation_w=dil[1],
             pad_top=a["pads"][0], pad_left=a["pads"][1], **_conv_weights(node, g, 3))
    return Step(node, "depthwise_conv2d_s16", p, [x.name], [out.name],
                macs=out_h * out_w * out_c * p["k_h"] * p["k_w"], weight_bytes=_const_bytes(p))


def lower_fully_connected16(node: Node, g: Graph) -> Step:
    x, out, w = (g.tensors[n] for n in (node.inputs[0], node.outputs[0], node.inputs[1]))
    n, k = w.shape
    p = dict(rows=x.size // k, in_features=k, out_features=n, **_conv_weights(node, g, 0))
    return Step(node, "fully_connected_s16", p, [x.name], [out.name], macs=x.size // k * n * k,
                weight_bytes=_const_bytes(p))


def lower_transpose_conv16(node: Node, g: Graph) -> Step:
    x, out, w = (g.tensors[n] for n in (node.inputs[0], node.outputs[0], node.inputs[1]))
    (in_h, in_w, in_c), (out_h, out_w, out_c) = _hw_c(x.shape), _hw_c(out.shape)
    a = node.attrs
    p = dict(in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=w.shape[1], k_w=w.shape[2],
             stride_h=a["strides"][0], stride_w=a["strides"][1], pad_top=a["pads"][0], pad_left=a["pads"][1],
             **_conv_weights(node, g, 0))
    return Step(node, "transpose_conv_s16", p, [x.name], [out.name],
                macs=in_h * in_w * in_c * p["k_h"] * p["k_w"] * out_c, weight_bytes=_const_bytes(p))


def lower_add_sub16(node: Node, g: Graph) -> Step:
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a.is_const or b.is_const:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): a constant operand of an int16 "
                                    f"{node.op} is not supported (two activations only)")
    _require_int16(node, g, [a.name, b.name, out.name])
    (sa, za), (sb, zb), (so, zo) = ((float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in (a, b, out))
    lo, hi = clamp_range16(node.attrs, out.quant)
    # ADD's preparation (ratios in double) for SUB too: TFLM's golden outputs of its seanet 16x8 SUB
    # models and the tflite_micro interpreter agree on it (int8 SUB divides in float32, fp.sub_params)
    q = fp.add_params(sa, za, sb, zb, so, zo, act_min=lo, act_max=hi, left_shift=15)
    p = {**broadcast_params(node, a.shape, b.shape, out.shape), **q}
    return Step(node, f"{node.op}_s16", p, [a.name, b.name], [out.name], macs=out.size, inplace="elementwise")


def lower_mul16(node: Node, g: Graph) -> Step:
    """MUL of two int16 activations, with broadcasting (TFLM's multiplier s1 * s2 / s_out in double)."""
    a, b, out = (g.tensors[n] for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    if a.is_const or b.is_const:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' (mul): a constant operand of an int16 mul "
                                    f"is not supported (two activations only)")
    _require_int16(node, g, [a.name, b.name, out.name])
    (sa, za), (sb, zb), (so, zo) = ((float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in (a, b, out))
    m, s = fp.quantize_multiplier(sa * sb / so)
    lo, hi = clamp_range16(node.attrs, out.quant)
    p = {**broadcast_params(node, a.shape, b.shape, out.shape), "input1_offset": -za, "input2_offset": -zb,
         "output_offset": zo, "multiplier": m, "shift": s, "act_min": lo, "act_max": hi}
    return Step(node, "mul_s16", p, [a.name, b.name], [out.name], macs=out.size, inplace="elementwise")


def lower_leaky_relu16(node: Node, g: Graph) -> Step:
    """TFLM LEAKY_RELU int16: identity and alpha multipliers, the scale ratios
    computed in float32 as leaky_relu_common.cc writes them
    (``input->params.scale * params->alpha / output->params.scale``, floats)
    and TFLM's golden outputs of its seanet 16x8 models confirm. (The
    ``tflite_micro`` Python package's interpreter differs from those goldens
    by one unit on a few values of 4 of the 23 seanet LEAKY_RELU models.)"""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    s_in, s_out = np.float32(x.quant.scale[0]), np.float32(out.quant.scale[0])
    alpha = np.float32(node.attrs["alpha"])
    m_alpha, s_alpha = fp.quantize_multiplier(float(s_in * alpha / s_out))
    m_id, s_id = fp.quantize_multiplier(float(s_in / s_out))
    p = dict(size=out.size, input_zero_point=int(x.quant.zero_point[0]),
             output_zero_point=int(out.quant.zero_point[0]), multiplier_identity=m_id, shift_identity=s_id,
             multiplier_alpha=m_alpha, shift_alpha=s_alpha)
    return Step(node, "leaky_relu_s16", p, [x.name], [out.name], macs=out.size, inplace="elementwise")


def checked_log2(x: float) -> tuple[bool, int]:
    """TFLite CheckedLog2 (float32): (is x a power of two within 1e-3 in log2, the rounded log2)."""
    f = np.float32
    x_log2 = f(np.log(f(x))) * (f(1.0) / f(np.log(f(2.0))))
    rounded = f(np.sign(x_log2) * np.floor(np.abs(x_log2) + f(0.5)))
    return bool(abs(f(x_log2 - rounded)) < f(1e-3)), int(rounded)


def lower_sigmoid_like16(node: Node, g: Graph) -> Step:
    """LOGISTIC / TANH with int16 activations (TFLM's 16-bit Prepare): a
    power-of-two input scale of 2^-12 (LOGISTIC; TANH also 2^-11) takes the
    fixed scaling, any other scale a multiplier s * 3 * 4096 doubled up to
    above 32767 / 2 with its shift; the output scale is 2^-15, zero points 0."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    pot_out, log2_out = checked_log2(float(out.quant.scale[0]))
    if not pot_out or log2_out != -15 or int(out.quant.zero_point[0]) != 0:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): int16 output scale "
                                    f"{float(out.quant.scale[0])!r} is not 2^-15 (TFLM's 16-bit {node.op.upper()})")
    pot, log2_in = checked_log2(float(x.quant.scale[0]))
    shift = (15 - 3) + log2_in
    pot = pot and (shift == 0 or (node.op == "tanh" and shift == 1))
    if pot:
        mult = 0
    else:
        m = float(np.float32(x.quant.scale[0])) * 4096.0 * 3.0
        shift = 0
        while m <= 32767.0 / 2.0 and shift <= 30:
            shift += 1
            m *= 2.0
        mult = int(m)
    if mult > 32767 or shift < 0:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): input scale "
                                    f"{float(x.quant.scale[0])!r} is too large for TFLM's 16-bit {node.op.upper()}")
    p = dict(size=out.size, input_multiplier=mult, input_left_shift=shift)
    return Step(node, f"{node.op}_s16", p, [x.name], [out.name], macs=out.size, inplace="elementwise")


def lower_softmax16(node: Node, g: Graph) -> Step:
    """SOFTMAX with int16 activations (TFLM's 16-bit Prepare): output scale
    2^-15 and zero point 0; the input rescaled by QuantizeMultiplier(s_in *
    beta / (10 / 65535)) (double) so that [-65535, 0] spans [-10, 0]; the two
    513-entry tables go to flash with the layer."""
    from .kernels.s16 import EXP_LUT, ONE_OVER_ONE_PLUS_X_LUT

    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    s_out = float(np.float32(out.quant.scale[0]))
    if int(out.quant.zero_point[0]) != 0 or abs(s_out - 1.0 / 32768) > 0.001 / 32768:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' (softmax): int16 output scale {s_out!r} / zero "
                                    f"point {int(out.quant.zero_point[0])}: TFLM's 16-bit SOFTMAX writes 2^-15, 0")
    real = float(np.float32(x.quant.scale[0])) * float(np.float32(node.attrs.get("beta", 1.0))) / (10.0 / 65535.0)
    m, s = fp.quantize_multiplier(real)
    cols = x.shape[-1]
    p = dict(rows=x.size // cols, cols=cols, input_multiplier=m, input_left_shift=s,
             exp_lut=EXP_LUT.copy(), one_over_one_plus_x_lut=ONE_OVER_ONE_PLUS_X_LUT.copy())
    return Step(node, "softmax_s16", p, [x.name], [out.name], macs=x.size, weight_bytes=2 * 2 * 513,
                inplace="elementwise")


def lower_requantize16(node: Node, g: Graph) -> Step:
    """QUANTIZE between int8 and int16 (TFLM Requantize, the ratio in double)."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    if node.attrs.get("raw_clamp") or node.attrs.get("float32_ratio") or \
            any(np.isfinite(node.attrs.get(k, np.inf if k == "act_max" else -np.inf)) for k in ("act_min", "act_max")):
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}': RELU / RELU6 / a clamp on int16 activations "
                                    f"is not supported")
    m, s = fp.quantize_multiplier(float(x.quant.scale[0]) / float(out.quant.scale[0]))
    kernel = {("int16", "int16"): "requantize_s16", ("int8", "int16"): "requantize_s8_s16",
              ("int16", "int8"): "requantize_s16_s8"}.get((x.dtype, out.dtype))
    if kernel is None:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}': QUANTIZE from {x.dtype} to {out.dtype} is not "
                                    f"supported (int8 <-> int16 and int16 -> int16)")
    p = dict(size=out.size, input_offset=-int(x.quant.zero_point[0]), output_offset=int(out.quant.zero_point[0]),
             multiplier=m, shift=s)
    return Step(node, kernel, p, [x.name], [out.name], macs=out.size,
                inplace="elementwise" if x.dtype == out.dtype else "")


def lower_pad16(node: Node, g: Graph) -> Step:
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    pads = list(node.attrs["pads"])
    if len(x.shape) == 2:
        pads = [(0, 0), (0, 0), (0, 0), pads[1]]
    elif len(x.shape) == 3:
        pads = [(0, 0), (0, 0)] + pads[1:]
    elif len(x.shape) != 4:
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' (pad): rank {len(x.shape)} is not supported")
    if tuple(pads[0]) != (0, 0):
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' (pad): padding the batch axis is not supported")
    shape4 = (1,) * (4 - len(x.shape)) + tuple(x.shape)
    value = float(node.attrs.get("value", 0.0))
    pad_value = int(np.clip(int(out.quant.zero_point[0]) + round_half_away(value / float(out.quant.scale[0])),
                            INT16_MIN, INT16_MAX))
    p = dict(in_h=shape4[1], in_w=shape4[2], in_c=shape4[3], pad_top=pads[1][0], pad_bottom=pads[1][1],
             pad_left=pads[2][0], pad_right=pads[2][1], pad_front=pads[3][0], pad_back=pads[3][1],
             pad_value=pad_value)
    return Step(node, "pad_s16", p, [x.name], [out.name])


def lower_strided_slice16(node: Node, g: Graph) -> Step:
    _require_int16(node, g, [node.inputs[0], node.outputs[0]])
    step = lower_strided_slice(node, g)
    step.kernel = "strided_slice_s16"
    return step


def lower_concat16(node: Node, g: Graph) -> Step:
    out = g.tensors[node.outputs[0]]
    ins = [g.tensors[n] for n in node.inputs]
    _require_int16(node, g, [t.name for t in ins] + [out.name])
    for t in ins:
        if not t.quant.same_as(out.quant):
            raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' (concat): int16 input '{t.name}' is quantized "
                                        f"differently from the output (TFLM requires the same parameters)")
    axis = node.attrs["axis"] % len(out.shape)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = np.array([int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins], dtype=np.int32)
    p = dict(num_inputs=len(ins), outer=outer, inner=inner)
    return Step(node, "concat_s16", p, [t.name for t in ins], [out.name], macs=out.size)


def lower_pool16(node: Node, g: Graph) -> Step:
    """MAX_POOL_2D / AVERAGE_POOL_2D (TFLM requires the same input and output quantization)."""
    x, out = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    _require_int16(node, g, [x.name, out.name])
    if not x.quant.same_as(out.quant):
        raise UnsupportedModelError(f"{_where(g)}: layer '{node.name}' ({node.op}): input and output quantization "
                                    f"differ (TFLM's 16x8 pooling keeps them equal)")
    (in_h, in_w, c), (out_h, out_w, _) = _hw_c(x.shape), _hw_c(out.shape)
    a = node.attrs
    lo, hi = clamp_range16(a, out.quant)
    p = dict(in_h=in_h, in_w=in_w, channels=c, out_h=out_h, out_w=out_w, k_h=a["kernel"][0], k_w=a["kernel"][1],
             stride_h=a["strides"][0], stride_w=a["strides"][1], pad_top=a["pads"][0], pad_left=a["pads"][1],
             act_min=lo, act_max=hi)
    return Step(node, f"{node.op}_s16", p, [x.name], [out.name], macs=out_h * out_w * c * p["k_h"] * p["k_w"])


LOWER_S16 = {
    "conv2d": lower_conv2d16,
    "depthwise_conv2d": lower_depthwise16,
    "fully_connected": lower_fully_connected16,
    "transpose_conv": lower_transpose_conv16,
    "add": lower_add_sub16,
    "sub": lower_add_sub16,
    "leaky_relu": lower_leaky_relu16,
    "clamp": lower_requantize16,
    "pad": lower_pad16,
    "strided_slice": lower_strided_slice16,
    "concat": lower_concat16,
    "max_pool": lower_pool16,
    "avg_pool": lower_pool16,
    "mul": lower_mul16,
    "logistic": lower_sigmoid_like16,
    "tanh": lower_sigmoid_like16,
    "softmax": lower_softmax16,
}

def check_supported16(graph: Graph) -> None:
    """One error listing every node with int16 activations that has no int16 kernel."""
    bad = [f"{n.name} ({n.op})" for n in graph.nodes
           if n.op != "reshape" and n.op not in LOWER_S16 and is_int16(n, graph)]
    if bad:
        raise UnsupportedModelError(
            f"{_where(graph)}: {len(bad)} node(s) with int16 activations have no 16x8 kernel: {', '.join(bad)}; "
            f"int16 activations are supported for: {', '.join(sorted(LOWER_S16))}, reshape (quantize the model to "
            f"int8, or move these layers out of it)")


def lower16(node: Node, graph: Graph) -> Step:
    return LOWER_S16[node.op](node, graph)
