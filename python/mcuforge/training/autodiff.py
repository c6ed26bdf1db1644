"""Compile-time autodiff of the quantized graph into backward steps, planned
with the forward steps in one arena.

The backward pass is pruned to what the policy needs: a tensor gets a
gradient only when a trained parameter lies between it and the loss
(`requires_grad` propagates forward from trained layers), a layer computes
its input gradient only when its input needs one, parameter gradients exist
only for trained parameters, and a forward activation stays alive only when
a backward step reads it (the planner extends its lifetime to that step).

With operator reordering (the default) each layer's update is applied inside
the step that computes its gradient, right after the layer's input gradient
(which still needs the old weights), so no parameter gradient is ever stored.
Without it, each update step stores its updates (int32) in the arena and
they are applied after the whole backward pass, as a framework that first
computes every gradient would.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..config import BuildConfig
from ..ir import Graph, McuforgeError, Node, Tensor
from ..ops import Step, lower_softmax
from .kernels import MOMENTUM_BITS, delta_layout
from .policy import DEFAULT_LEARNING_RATE, Policy, weight_layers

GRAD_DTYPE = "int16"
# trained-state fields that start as copies of the model's parameters; the others (weight fractions,
# momentum velocities) start at 0
STATE_COPIES = ("bias", "filter")
CONV_KERNELS = {"conv2d_s8": "conv2d", "depthwise_conv2d_s8": "depthwise", "depthwise_conv2d_s8_inplace": "depthwise",
                "fully_connected_s8": "fully_connected"}


def q31(real: float) -> tuple[int, int]:
    """real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31) (any exponent)."""
    if real == 0.0:
        return 0, 0
    m, k = math.frexp(float(real))
    mult = int(round(m * (1 << 31)))
    if mult == 1 << 31:
        mult, k = mult // 2, k + 1
    return mult, k


def q31_array(reals) -> tuple[np.ndarray, np.ndarray]:
    pairs = [q31(float(r)) for r in np.asarray(reals, dtype=np.float64).reshape(-1)]
    return np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32)


def loss_table() -> np.ndarray:
    k = np.maximum(np.arange(256, dtype=np.float64), 0.5)
    return (-np.log(k / 256.0)).astype(np.float32)


@dataclass
class TrainableLayer:
    """A weight layer with trained parameters and its RAM copies."""

    layer: int  # weight-layer index
    step: int  # forward step index
    name: str
    bias: bool
    channels: int  # trained output channels (weights), 0: weights frozen
    out_c: int
    filter_size: int
    trained_weights: int  # weights of the trained channels (each an int8 fraction in the state)


@dataclass
class TrainingPlan:
    policy: Policy
    layers: list[TrainableLayer]
    steps: list[Step]  # backward steps, indices continue after the forward steps
    grads: list[str]  # gradient tensors, each with a runtime exponent
    logits: str
    probs: str
    classes: int
    learning_rate: float
    qas: bool
    reorder: bool
    weight_layer_names: list[str]
    momentum: float = 0.0  # SGD momentum; > 0: an int32 velocity per trained parameter in the state
    loss_table: np.ndarray = field(default_factory=loss_table)
    gains: dict | None = None  # contribution analysis (automatic policy)
    saved_activations: list[str] = field(default_factory=list)  # forward tensors a backward step reads
    # the lowest forward step with a backward step (the lowest layer the backward pass reaches):
    # every step before it is pure inference, and only those may run on patches
    lowest_reached: int = 0

    @property
    def state_layout(self) -> list[tuple[int, str, str, int]]:
        """(weight layer, field, C type, elements), in the order of the state
        struct: int32 biases, int32 velocities (with momentum: the trained
        weights', then the biases', as the updates of an unordered step), the
        int8 fractions of the master weights, int8 filters."""
        out = [(t.layer, "bias", "int32_t", t.out_c) for t in self.layers if t.bias]
        if self.momentum:
            out += [(t.layer, "velocity", "int32_t", t.trained_weights + t.out_c * t.bias) for t in self.layers]
        out += [(t.layer, "fraction", "int8_t", t.trained_weights) for t in self.layers if t.channels]
        out += [(t.layer, "filter", "int8_t", t.filter_size) for t in self.layers if t.channels]
        return out

    @property
    def state_bytes(self) -> int:
        size = sum(n * {"int32_t": 4, "int16_t": 2, "int8_t": 1}[c] for _, _, c, n in self.state_layout)
        return (size + 3) // 4 * 4

    def memory(self) -> dict:
        bias = sum(4 * t.out_c for t in self.layers if t.bias)
        fraction = sum(t.trained_weights for t in self.layers if t.channels)
        filt = sum(t.filter_size for t in self.layers if t.channels)
        velocity = sum(4 * n for _, f, _, n in self.state_layout if f == "velocity")
        return {"state_bytes": self.state_bytes, "bias_bytes": bias, "weight_fraction_bytes": fraction,
                "filter_copy_bytes": filt, "optimizer_state_bytes": velocity}

    def state_breakdown(self) -> str:
        """What the trained state's bytes are, for the compile output and the header."""
        m = self.memory()
        return (f"biases {m['bias_bytes']}, int8 weight fractions {m['weight_fraction_bytes']}, int8 filter copies "
                f"{m['filter_copy_bytes']}, momentum velocities {m['optimizer_state_bytes']}")


def conv_train_params(step: Step, graph: Graph, bias: bool, channels: int, lr: float, qas: bool,
                      momentum: float = 0.0) -> dict:
    """The mcf_train_conv_params of a forward conv / depthwise / FC step."""
    p = step.params
    kind = CONV_KERNELS[step.kernel]
    node = step.node
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if kind == "fully_connected":
        k, n = p["in_features"], p["out_features"]
        geo = dict(in_h=p["rows"], in_w=1, in_c=k, out_h=p["rows"], out_w=1, out_c=n, k_h=1, k_w=1,
                   stride_h=1, stride_w=1, dilation_h=1, dilation_w=1, pad_top=0, pad_left=0,
                   in_per_group=k, out_per_group=n, w_stride_o=k, w_stride_ky=k, w_stride_kx=k, w_stride_i=1)
    else:
        geo = {key: p[key] for key in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h",
                                       "stride_w", "dilation_h", "dilation_w", "pad_top", "pad_left")}
        kh, kw, ic, oc = p["k_h"], p["k_w"], p["in_c"], p["out_c"]
        if kind == "conv2d":
            geo.update(in_per_group=ic, out_per_group=oc, w_stride_o=kh * kw * ic, w_stride_ky=kw * ic,
                       w_stride_kx=ic, w_stride_i=1)
        else:
            geo.update(in_per_group=1, out_per_group=p["depth_multiplier"], w_stride_o=1, w_stride_ky=kw * oc,
                       w_stride_kx=oc, w_stride_i=0)
    out_c = geo["out_c"]
    s_x = float(x.quant.scale[0])
    s_w = np.broadcast_to(np.asarray(w.quant.scale, dtype=np.float64), (out_c,))
    s_max = float(s_w.max())
    grad_scale = np.round(s_w / s_max * (1 << 15)).astype(np.int32)
    gm, gs = q31(s_max)
    params = dict(geo, input_offset=p["input_offset"], act_min=p["act_min"], act_max=p["act_max"],
                  grad_multiplier=gm, grad_shift=gs - 15, trained_channels=channels, grad_scale=grad_scale,
                  weight_multiplier=None, weight_shift=None, bias_multiplier=None, bias_shift=None,
                  momentum=int(round(momentum * (1 << MOMENTUM_BITS))) if bias or channels else 0)
    unit = float(1 << 8)  # master weights: units of s_w / 256
    if channels:
        real = lr * s_x * unit / s_w[:channels] if qas else lr * s_x * s_w[:channels] * unit
        params["weight_multiplier"], params["weight_shift"] = q31_array(real)
    if bias:
        real = lr / (s_x * s_w) if qas else lr * s_x * s_w
        params["bias_multiplier"], params["bias_shift"] = q31_array(real)
    return params


class _Builder:
    def __init__(self, graph: Graph, steps: list[Step], aliases, policy: Policy, config: BuildConfig):
        self.graph = graph
        self.steps = steps
        self.policy = policy
        self.reorder = config.train_reorder
        self.qas = config.train_qas
        self.lr = config.learning_rate if config.learning_rate is not None else DEFAULT_LEARNING_RATE
        self.momentum = config.momentum or 0.0
        self.alias_of = {dst: src for src, dst in aliases}
        self.tensors: dict[str, Tensor] = {}
        self.bwd: list[Step] = []
        self.apply: list[Step] = []
        self.partials: dict[str, list[str]] = {}
        self.grads: list[str] = []

    def canon(self, t: str) -> str:
        while t in self.alias_of:
            t = self.alias_of[t]
        return t

    def new_tensor(self, base: str, shape, dtype: str = GRAD_DTYPE, grad: bool = True) -> str:
        name = f"train:{base}"
        k = 1
        while name in self.tensors or name in self.graph.tensors:
            name = f"train:{base}:{k}"
            k += 1
        self.tensors[name] = Tensor(name, tuple(shape), dtype)
        if grad:
            self.grads.append(name)
        return name

    def add(self, name: str, kernel: str, params: dict, inputs: list[str], outputs: list[str],
            macs: int = 0, target: list[Step] | None = None, inplace: str = "") -> Step:
        node = Node(name, "train", list(inputs), list(outputs), {})
        step = Step(node, kernel, params, list(inputs), list(outputs), macs=macs, inplace=inplace)
        (self.bwd if target is None else target).append(step)
        return step

    def gradient_of(self, t: str) -> str:
        parts = self.partials[t]
        g = parts[0]
        for other in parts[1:]:
            out = self.new_tensor(f"grad:{t}", self.graph.tensors[t].shape)
            # element i of the sum reads only element i of its addends: it may overwrite one of them
            self.add(f"sum:{t}", "train_grad_sum", {"size": self.graph.tensors[t].size}, [g, other], [out],
                     inplace="elementwise")
            g = out
        return g

    def build(self) -> TrainingPlan:
        g, steps = self.graph, self.steps
        layers = weight_layers(steps)
        names = [s.name for s in layers]
        trained: dict[int, TrainableLayer] = {}
        for k, s in enumerate(layers):
            out_c = g.tensors[s.outputs[0]].shape[-1]
            bias = k in self.policy.bias
            ch = self.policy.channels(k, out_c)
            if not bias and not ch:
                continue
            fsize = int(s.params["filter"].size)
            trained[s.index] = TrainableLayer(k, s.index, s.name, bias, ch, out_c, fsize, fsize // out_c * ch)
        if len(g.outputs) != 1:
            raise McuforgeError(f"{g.source or g.name}: training needs a model with one output (class scores), "
                                f"this one has {len(g.outputs)}")
        out = g.outputs[0]
        # requires_grad, forward
        rg: set[str] = set()
        for s in steps:
            if s.index in trained or any(self.canon(i) in rg for i in s.inputs):
                rg.add(self.canon(s.outputs[0]))
        producer = {self.canon(s.outputs[0]): s for s in steps}
        final = producer.get(self.canon(out))
        classes = g.tensors[out].size
        if final is not None and final.kernel == "softmax_s8":
            logits, probs = final.inputs[0], final.outputs[0]
            skip = final.index
        else:
            logits, skip = out, -1
            probs = self.new_tensor("probs", g.tensors[out].shape, "int8", grad=False)
            x = g.tensors[out]
            pseudo = Node("train:softmax", "softmax", [out], [probs], {"beta": 1.0})
            tmp = dataclasses.replace(g, tensors={**g.tensors, probs: dataclasses.replace(
                x, name=probs, quant=None)})
            sm = lower_softmax(pseudo, tmp)
            self.add("loss:softmax", "softmax_s8", sm.params, [out], [probs], macs=sm.macs)
        glogits = self.new_tensor(f"grad:{self.canon(logits)}", (1, classes))
        self.add("loss", "train_loss", {"classes": classes}, [probs], [glogits])
        self.partials[self.canon(logits)] = [glogits]

        reached = len(steps) if skip < 0 else skip
        for s in reversed(steps):
            y = self.canon(s.outputs[0])
            if s.index == skip or y not in rg or y not in self.partials:
                continue
            gy = self.gradient_of(y)
            reached = s.index
            kind = CONV_KERNELS.get(s.kernel)
            x = s.inputs[0]
            if kind is not None:
                tp = trained.get(s.index)
                params = conv_train_params(s, g, tp.bias if tp else False, tp.channels if tp else 0, self.lr,
                                           self.qas, self.momentum)
                if self.canon(x) in rg:
                    gx = self.new_tensor(f"grad:{self.canon(x)}", g.tensors[x].shape)
                    self.add(f"{s.name}:input_grad", "train_conv_input_grad", params, [gy, s.outputs[0]], [gx],
                             macs=s.macs)
                    self.partials.setdefault(self.canon(x), []).append(gx)
                if tp is not None:
                    reads = [gy, s.outputs[0]] + ([x] if tp.channels else [])
                    macs = s.macs * tp.channels // tp.out_c
                    if self.reorder:
                        self.add(f"{s.name}:update", "train_conv_update", params, reads, [], macs=macs)
                    else:
                        nw, nb = delta_layout(params)
                        delta = self.new_tensor(f"delta:{s.name}", (nw + nb,), "int32", grad=False)
                        self.add(f"{s.name}:gradient", "train_conv_update", params, reads, [delta], macs=macs)
                        self.add(f"{s.name}:apply", "train_conv_apply", params, [delta], [], target=self.apply)
            elif s.kernel in ("add_s8", "requantize_s8"):
                gm = self.new_tensor(f"grad:{y}:masked", g.tensors[y].shape)
                p = {"size": g.tensors[y].size, "act_min": s.params["act_min"], "act_max": s.params["act_max"]}
                self.add(f"{s.name}:backward", "train_mask", p, [gy, s.outputs[0]], [gm], inplace="elementwise")
                for i in dict.fromkeys(self.canon(t) for t in s.inputs):
                    if i in rg:
                        self.partials.setdefault(i, []).append(gm)
            elif s.kernel in ("avg_pool_s8", "mean_s8"):
                p = s.params
                if s.kernel == "mean_s8":
                    pp = dict(in_h=p["in_h"], in_w=p["in_w"], channels=p["channels"], out_h=1, out_w=1,
                              k_h=p["in_h"], k_w=p["in_w"], stride_h=1, stride_w=1, pad_top=0, pad_left=0,
                              act_min=-128, act_max=127, use_mask=0)
                else:
                    pp = {k: p[k] for k in ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h",
                                            "stride_w", "pad_top", "pad_left", "act_min", "act_max")}
                    pp["use_mask"] = int(p["act_min"] > -128 or p["act_max"] < 127)
                gx = self.new_tensor(f"grad:{self.canon(x)}", g.tensors[x].shape)
                reads = [gy] + ([s.outputs[0]] if pp["use_mask"] else [])
                self.add(f"{s.name}:backward", "train_pool_backward", pp, reads, [gx], macs=s.macs)
                self.partials.setdefault(self.canon(x), []).append(gx)
            else:
                raise McuforgeError(
                    f"node '{s.name}' ({s.node.op}) has no backward op, and training needs gradients through it; "
                    "train only layers after it (--training bias/sparse with --train-bias-layers / "
                    "--train-weight-layers) or replace the op")
        self.bwd += self.apply
        forward_tensors = {t for s in steps for t in s.outputs} | set(g.inputs)
        saved = sorted({t for s in self.bwd for t in s.inputs if t in forward_tensors})
        return TrainingPlan(policy=self.policy, layers=sorted(trained.values(), key=lambda t: t.layer),
                            steps=self.bwd, grads=self.grads, logits=logits, probs=probs, classes=classes,
                            learning_rate=self.lr, qas=self.qas, reorder=self.reorder, weight_layer_names=names,
                            momentum=self.momentum,
                            saved_activations=saved, lowest_reached=reached)


def differentiate(graph: Graph, steps: list[Step], aliases, policy: Policy,
                  config: BuildConfig) -> tuple[TrainingPlan, dict[str, Tensor]]:
    b = _Builder(graph, steps, aliases, policy, config)
    tp = b.build()
    return tp, b.tensors
