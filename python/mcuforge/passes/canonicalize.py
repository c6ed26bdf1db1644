"""The canonicalize pass: a frontend Graph -> a Graph of canonical ops only.

Steps, in order (each keeps quant annotations of a QDQ graph coherent: a
tensor that disappears is only ever merged with one that has the same Quant,
and a fused layer writes the tensor -- and so takes the Quant -- of the op
fused into it):

1. layout clean-up: transposes that only move size-1 axes become reshapes,
   chains of transposes / reshapes collapse, identities disappear;
2. ``batch_norm`` folds into the conv2d / depthwise_conv2d / fully_connected
   right before it (a shared layer is cloned); anything else is an error;
3. ``clamp`` (ReLU, ReLU6, Clip) fuses into the layer that produces its input
   when that layer has no other consumer (act_min / act_max), else stays;
4. a constant-zero ``pad`` folds into the following conv / depthwise conv,
   and into a max_pool when padding cannot change any maximum;
5. transpose -> reshape(1, K) -> fully_connected becomes reshape ->
   fully_connected with the weight columns permuted;
6. dead nodes and tensors are removed, nodes are topologically sorted.
"""
from __future__ import annotations

import numpy as np

from ..float_exec import constant_value
from ..ir import INF, Graph, Node, Quant, Tensor, UnsupportedModelError, unique_name
from ..registry import Pass

CANONICAL_OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "add", "avg_pool", "max_pool", "mean",
                 "reshape", "transpose", "concat", "pad", "softmax", "clamp", "hard_swish", "hard_sigmoid",
                 "logistic", "tanh", "leaky_relu", "mul", "sub", "maximum", "minimum", "strided_slice",
                 "resize_nearest", "transpose_conv", "prelu", "reduce_max", "tile")
FOLD_BN_INTO = ("conv2d", "depthwise_conv2d", "fully_connected")
FUSE_ACT_INTO = ("conv2d", "depthwise_conv2d", "fully_connected", "add", "avg_pool", "max_pool", "clamp", "mul",
                 "sub", "transpose_conv")
_OUT_CHANNEL_AXIS = {"conv2d": 0, "depthwise_conv2d": 3, "fully_connected": 0}


def canonicalize(graph: Graph) -> Graph:
    g = graph.copy()
    _simplify_layout(g)
    _fold_batch_norm(g)
    _fuse_activations(g)
    _fold_pads(g)
    _simplify_layout(g)
    _fold_flatten_into_fc(g)
    _simplify_layout(g)
    _remove_dead_nodes(g)
    g.toposort()
    g.remove_unused()
    return g


PASS = Pass(name="canonicalize", run=canonicalize, order=10)


# ---- helpers --------------------------------------------------------------


def _same_quant(a: Quant | None, b: Quant | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same_as(b))


def _quants_agree(g: Graph, *names: str) -> bool:
    first = g.tensors[names[0]].quant
    return all(_same_quant(first, g.tensors[n].quant) for n in names[1:])


def _label(g: Graph) -> str:
    return g.source or g.name


def _remove_dead_nodes(g: Graph) -> None:
    while True:
        used = set(g.outputs)
        for n in g.nodes:
            used.update(n.inputs)
        keep = [n for n in g.nodes if any(o in used for o in n.outputs)]
        if len(keep) == len(g.nodes):
            return
        g.nodes = keep


def _bypass(g: Graph, node: Node) -> bool:
    """Remove a node whose output holds the same values as its input.

    Uses of the output read the input instead; when the output is a graph
    output, the input's producer writes the output tensor directly.
    Returns False when that is impossible (input and output both graph
    inputs/outputs)."""
    src, out = node.inputs[0], node.outputs[0]
    if g.tensors[src].shape != g.tensors[out].shape:
        return False
    if out in g.outputs:
        producer = g.producers().get(src)
        if producer is None or src in g.outputs:
            return False
        producer.outputs = [out if o == src else o for o in producer.outputs]
        for n in g.nodes:
            if n is not node:
                n.inputs = [out if i == src else i for i in n.inputs]
    else:
        for n in g.nodes:
            n.inputs = [src if i == out else i for i in n.inputs]
    g.nodes.remove(node)
    return True


def _exclusive(g: Graph, tensor: str, consumer: Node) -> bool:
    """`tensor` is read by `consumer` only and is not a graph output."""
    if tensor in g.outputs or tensor in g.inputs:
        return False
    users = g.consumers().get(tensor, [])
    return len(users) == 1 and users[0] is consumer


def _new_const(g: Graph, base: str, data: np.ndarray, dtype: str = "float32",
               quant: Quant | None = None) -> str:
    name = unique_name(g.tensors, base)
    g.tensors[name] = Tensor(name, data.shape, dtype, np.ascontiguousarray(data), quant)
    return name


# ---- 1. layout clean-up -------------------------------------------------------


def _moves_only_unit_axes(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _is_identity_clamp(node: Node) -> bool:
    return node.attrs.get("act_min", -INF) == -INF and node.attrs.get("act_max", INF) == INF


def _simplify_layout(g: Graph) -> None:
    changed = True
    while changed:
        changed = False
        producers = g.producers()
        for node in list(g.nodes):
            if node.op not in ("transpose", "reshape", "clamp"):
                continue
            src, out = node.inputs[0], node.outputs[0]
            if not _quants_agree(g, src, out):
                continue  # a requantization (QDQ): keep it
            prev = producers.get(src)
            if node.op == "clamp":
                if _is_identity_clamp(node) and _bypass(g, node):
                    changed, producers = True, g.producers()
                continue
            if node.op == "transpose":
                perm = tuple(node.attrs["perm"])
                if prev is not None and prev.op == "transpose" and _quants_agree(g, prev.inputs[0], src):
                    first = tuple(prev.attrs["perm"])
                    node.inputs = [prev.inputs[0]]
                    node.attrs["perm"] = perm = tuple(first[p] for p in perm)
                    src, changed = node.inputs[0], True
                if perm == tuple(range(len(perm))):
                    if _bypass(g, node):
                        changed, producers = True, g.producers()
                elif _moves_only_unit_axes(g.tensors[src].shape, perm):
                    node.op = "reshape"
                    node.attrs = {"shape": g.tensors[out].shape}
                    changed = True
            else:
                if prev is not None and prev.op == "reshape" and _quants_agree(g, prev.inputs[0], src):
                    node.inputs = [prev.inputs[0]]
                    src, changed = node.inputs[0], True
                if g.tensors[src].shape == g.tensors[out].shape and _bypass(g, node):
                    changed, producers = True, g.producers()
        _remove_dead_nodes(g)


# ---- 2. BatchNorm folding ---------------------------------------------------


def _fold_batch_norm(g: Graph) -> None:
    problems = []
    for bn in [n for n in g.nodes if n.op == "batch_norm"]:
        src = bn.inputs[0]
        prev = g.producers().get(src)
        trivial_act = prev is not None and prev.attrs.get("act_min", -INF) == -INF \
            and prev.attrs.get("act_max", INF) == INF
        if prev is None or prev.op not in FOLD_BN_INTO or not trivial_act:
            if not _batch_norm_as_mul_add(g, bn):
                after = (f"it follows the graph input '{src}'" if prev is None
                         else f"it follows {prev.name} ({prev.op})")
                problems.append(f"{bn.name} (BatchNormalization): {after}")
            continue
        gamma, beta, mean, var = (constant_value(g.tensors[t]) for t in bn.inputs[1:5])
        scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        shift = beta - mean * scale
        axis = _OUT_CHANNEL_AXIS[prev.op]
        weight = constant_value(g.tensors[prev.inputs[1]])
        shape = [1] * weight.ndim
        shape[axis] = scale.size
        new_w = (weight * scale.reshape(shape)).astype(np.float32)
        old_b = constant_value(g.tensors[prev.inputs[2]]) if len(prev.inputs) > 2 and prev.inputs[2] else 0.0
        new_b = (old_b * scale + shift).astype(np.float32)
        w_name = _new_const(g, f"{prev.name}.weight", new_w)
        b_name = _new_const(g, f"{prev.name}.bias", new_b)
        if _exclusive(g, src, bn):
            prev.inputs = [prev.inputs[0], w_name, b_name]
            prev.outputs = [bn.outputs[0]]
        else:  # the un-normalized output is used elsewhere too: a second copy of the layer
            clone = Node(unique_name([n.name for n in g.nodes], f"{prev.name}_bn"), prev.op,
                         [prev.inputs[0], w_name, b_name], [bn.outputs[0]], dict(prev.attrs))
            g.nodes.insert(g.nodes.index(bn), clone)
        g.nodes.remove(bn)
    if problems:
        raise UnsupportedModelError(
            f"{_label(g)}: cannot fold BatchNormalization: {'; '.join(problems)}. mcuforge folds a "
            f"BatchNormalization into the conv, depthwise conv or fully-connected layer right before it: "
            f"place it directly after such a layer (before any activation) or fold it into the model "
            f"before exporting")
    g.remove_unused()


def _batch_norm_as_mul_add(g: Graph, bn: Node) -> bool:
    """A BatchNormalization with no layer to fold into (on the model input,
    after an activation or a pooling): x * scale + shift with per-channel
    constants (channels last), as TFLite's converter writes a standalone
    one. False when the shapes do not allow it."""
    x = g.tensors[bn.inputs[0]]
    gamma, beta, mean, var = (constant_value(g.tensors[t]) for t in bn.inputs[1:5])
    if x.quant is not None or not x.shape or gamma.size != x.shape[-1]:
        return False
    scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    shift = beta - mean * scale
    mid = unique_name(g.tensors, f"{bn.outputs[0]}_scaled")
    g.tensors[mid] = Tensor(mid, x.shape, x.dtype)
    names = [n.name for n in g.nodes]
    mul = Node(unique_name(names, f"{bn.name}_mul"), "mul",
               [bn.inputs[0], _new_const(g, f"{bn.name}.scale", scale.astype(np.float32))], [mid],
               {"act_min": -INF, "act_max": INF})
    add = Node(unique_name(names + [mul.name], f"{bn.name}_add"), "add",
               [mid, _new_const(g, f"{bn.name}.shift", shift.astype(np.float32))], [bn.outputs[0]],
               {"act_min": -INF, "act_max": INF})
    k = g.nodes.index(bn)
    g.nodes[k:k + 1] = [mul, add]
    return True


# ---- 3. activation fusion -------------------------------------------------------


def _fuse_activations(g: Graph) -> None:
    producers, consumers = g.producers(), g.consumers()
    for clamp in [n for n in g.nodes if n.op == "clamp"]:  # in execution order: chains fuse too
        src, out = clamp.inputs[0], clamp.outputs[0]
        prev = producers.get(src)
        users = consumers.get(src, [])
        exclusive = src not in g.outputs and src not in g.inputs and len(users) == 1 and users[0] is clamp
        if prev is None or prev.op not in FUSE_ACT_INTO or not exclusive:
            continue
        if g.source_format == "tflite" and not _quants_agree(g, src, out):
            continue  # TFLM requantizes twice (layer, then RELU / QUANTIZE): keep both
        lo = max(float(prev.attrs.get("act_min", -INF)), float(clamp.attrs.get("act_min", -INF)))
        hi = min(float(prev.attrs.get("act_max", INF)), float(clamp.attrs.get("act_max", INF)))
        prev.attrs["act_min"], prev.attrs["act_max"] = lo, hi
        prev.outputs = [out if o == src else o for o in prev.outputs]
        producers[out] = prev
        del producers[src]
        g.nodes.remove(clamp)
    g.remove_unused()


# ---- 4. pad folding ----------------------------------------------------------------


def _lower_bound(g: Graph, tensor: str) -> float:
    prev = g.producers().get(tensor)
    if prev is None:
        return -INF
    return float(prev.attrs.get("act_min", -INF))


def _fold_pads(g: Graph) -> None:
    for pad in [n for n in g.nodes if n.op == "pad"]:
        src, out = pad.inputs[0], pad.outputs[0]
        pads = [tuple(p) for p in pad.attrs["pads"]]
        value = float(pad.attrs.get("value", 0.0))
        if len(pads) != 4 or pads[0] != (0, 0) or pads[3] != (0, 0):
            continue
        users = g.consumers().get(out, [])
        if len(users) != 1 or not _exclusive(g, out, users[0]) or users[0].inputs[0] != out:
            continue
        if not _quants_agree(g, src, out):
            continue
        layer = users[0]
        (top, bottom), (left, right) = pads[1], pads[2]
        old = tuple(layer.attrs.get("pads", (0, 0, 0, 0)))
        merged = (old[0] + top, old[1] + left, old[2] + bottom, old[3] + right)
        if layer.op in ("conv2d", "depthwise_conv2d"):
            legal = value == 0.0
        elif layer.op == "max_pool":
            kh, kw = layer.attrs["kernel"]
            # every window keeps at least one real element, and no pad value can
            # exceed the real ones: padding then never changes a maximum
            legal = (merged[0] < kh and merged[2] < kh and merged[1] < kw and merged[3] < kw
                     and (value == -INF or value <= _lower_bound(g, src)))
        else:  # avg_pool excludes padding from its count: a real zero pad is not foldable
            legal = False
        if not legal:
            continue
        layer.attrs["pads"] = merged
        layer.inputs = [src] + layer.inputs[1:]
        g.nodes.remove(pad)
    g.remove_unused()


# ---- 5. transpose + reshape + fully_connected ---------------------------------------


def _fold_flatten_into_fc(g: Graph) -> None:
    for reshape in [n for n in g.nodes if n.op == "reshape"]:
        flat = reshape.outputs[0]
        shape = g.tensors[flat].shape
        if len(shape) != 2 or shape[0] != 1 or flat in g.outputs:
            continue
        transpose = g.producers().get(reshape.inputs[0])
        if transpose is None or transpose.op != "transpose" or not _exclusive(g, reshape.inputs[0], reshape):
            continue
        users = g.consumers().get(flat, [])
        if not users or any(u.op != "fully_connected" or u.inputs[0] != flat for u in users):
            continue
        x = transpose.inputs[0]
        if not _quants_agree(g, x, transpose.outputs[0], flat):
            continue
        k = shape[1]
        perm = tuple(transpose.attrs["perm"])
        # y = x.transpose(perm).reshape(k)  =>  y[j] = x.flat[source[j]]
        source = np.arange(k).reshape(g.tensors[x].shape).transpose(perm).reshape(k)
        for fc in users:
            w = g.tensors[fc.inputs[1]]
            data = np.empty_like(w.data)
            data[:, source] = w.data
            quant = None if w.quant is None else Quant(w.quant.scale.copy(), w.quant.zero_point.copy(), w.quant.axis)
            fc.inputs[1] = _new_const(g, w.name, data, w.dtype, quant)
        reshape.inputs = [x]
        g.nodes.remove(transpose)
    g.remove_unused()
