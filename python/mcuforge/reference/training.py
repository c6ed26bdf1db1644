"""NumPy executor of a training step, on the real arena offsets of the plan.

`TrainState` holds what the generated C keeps in RAM (trained biases, int8
filter copies and the int8 fractions of the trained weights' master values,
momentum velocities) and serializes to the exact bytes of
``<name>_train_state()``. `train_step` runs the forward steps (the inference
kernels' twins, reading the trained parameters from the state) and then the
backward steps, and returns the loss the C reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import reference
from ..plan import Plan
from ..training import kernels as K
from ..training.autodiff import STATE_COPIES

_NP = {"int32_t": np.int32, "int16_t": np.int16, "int8_t": np.int8}


@dataclass
class TrainState:
    arrays: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)

    @staticmethod
    def initial(plan: Plan) -> "TrainState":
        tp = plan.training
        by_step = {s.index: s for s in plan.steps}
        params = {t.layer: by_step[t.step].params for t in tp.layers}
        st = TrainState()
        for layer, what, ctype, n in tp.state_layout:
            if what in STATE_COPIES:
                st.arrays[(layer, what)] = np.asarray(params[layer][what], dtype=_NP[ctype]).reshape(-1).copy()
            else:
                st.arrays[(layer, what)] = np.zeros(n, dtype=_NP[ctype])
        return st

    def to_bytes(self, plan: Plan) -> bytes:
        tp = plan.training
        raw = b"".join(self.arrays[(layer, f)].astype(_NP[c]).tobytes() for layer, f, c, _ in tp.state_layout)
        return raw + bytes(tp.state_bytes - len(raw))

    @staticmethod
    def from_bytes(plan: Plan, raw: bytes) -> "TrainState":
        st, pos = TrainState(), 0
        for layer, f, c, n in plan.training.state_layout:
            dt = np.dtype(_NP[c])
            st.arrays[(layer, f)] = np.frombuffer(raw[pos:pos + n * dt.itemsize], dtype=dt).copy()
            pos += n * dt.itemsize
        return st

    def copy(self) -> "TrainState":
        return TrainState({k: v.copy() for k, v in self.arrays.items()})

    def master(self, plan: Plan, t) -> np.ndarray:
        """The 16-bit master values (int64, master order) of layer t's trained weights."""
        idx = K.trained_filter_index(_conv_params(plan, t.step), t.channels)
        return K.master_weights(self.arrays[(t.layer, "filter")], self.arrays[(t.layer, "fraction")], idx)


def _conv_params(plan: Plan, forward_index: int) -> dict:
    """The training parameters of a forward weight layer (any of its backward steps)."""
    name = plan.steps[forward_index].name
    for s in plan.training.steps:
        if s.kernel.startswith("train_conv") and s.name.rsplit(":", 1)[0] == name:
            return s.params
    raise KeyError(name)


def forward_params(plan: Plan, state: TrainState) -> dict[int, dict]:
    """Forward step index -> its params with the trained arrays of `state`."""
    out = {}
    for t in plan.training.layers:
        p = dict(plan.steps[t.step].params)
        if t.bias:
            p["bias"] = state.arrays[(t.layer, "bias")]
        if t.channels:
            p["filter"] = state.arrays[(t.layer, "filter")]
        out[t.step] = p
    return out


def _view(plan: Plan, arena: np.ndarray, tensor: str) -> np.ndarray:
    t = plan.graph.tensors[tensor]
    off = plan.offset(tensor)
    return arena[off:off + t.nbytes].view(np.dtype(t.dtype))


def _store(plan: Plan, arena: np.ndarray, tensor: str, values) -> None:
    v = _view(plan, arena, tensor)
    v[:] = np.asarray(values).reshape(-1).astype(v.dtype)


def infer(plan: Plan, state: TrainState, x: np.ndarray) -> np.ndarray:
    """Inference with the current state (what <name>_invoke computes); the flat int8 output."""
    arena = np.zeros(plan.arena_size, dtype=np.int8)
    _forward(plan, state, arena, x)
    return _view(plan, arena, plan.outputs[0]).copy()


def _forward(plan: Plan, state: TrainState, arena: np.ndarray, x: np.ndarray) -> None:
    reference.execute(plan, arena, np.asarray(x, dtype=np.int8), forward_params(plan, state))


def train_step(plan: Plan, state: TrainState, x: np.ndarray, label: int, record: dict | None = None,
               arena: np.ndarray | None = None) -> np.float32:
    """One training step on int8 input x (IR layout) and its label; updates
    `state` in place and returns the loss. `record` (optional) receives, per
    trained layer, the real-valued gradients of its parameters."""
    tp = plan.training
    if not 0 <= label < tp.classes:
        raise ValueError(f"label {label} is not in 0..{tp.classes - 1}")
    if arena is None:
        arena = np.zeros(plan.arena_size, dtype=np.int8)
    _forward(plan, state, arena, x)
    exps: dict[str, int] = {}
    loss = np.float32(np.nan)
    by_name = {t.name: t for t in tp.layers}
    g = plan.graph
    rd = lambda t: _view(plan, arena, t).copy()  # noqa: E731
    for s in tp.steps:
        p = s.params
        if s.kernel == "softmax_s8":
            reference.run_step(plan, arena, s, p, {})
        elif s.kernel == "train_loss":
            gl, e, k = K.train_loss(p, rd(s.inputs[0]), label)
            loss = tp.loss_table[k]
            _store(plan, arena, s.outputs[0], gl)
            exps[s.outputs[0]] = e
        elif s.kernel == "train_grad_sum":
            out, e = K.train_grad_sum(p, rd(s.inputs[0]), exps[s.inputs[0]], rd(s.inputs[1]), exps[s.inputs[1]])
            _store(plan, arena, s.outputs[0], out)
            exps[s.outputs[0]] = e
        elif s.kernel == "train_mask":
            out, e = K.train_mask(p, rd(s.inputs[0]), exps[s.inputs[0]], rd(s.inputs[1]))
            _store(plan, arena, s.outputs[0], out)
            exps[s.outputs[0]] = e
        elif s.kernel == "train_pool_backward":
            y = rd(s.inputs[1]) if len(s.inputs) > 1 else None
            out, e = K.train_pool_backward(p, rd(s.inputs[0]), exps[s.inputs[0]], y)
            _store(plan, arena, s.outputs[0], out)
            exps[s.outputs[0]] = e
        elif s.kernel == "train_conv_input_grad":
            layer = plan.steps[_forward_index(plan, s)]
            filt = forward_params(plan, state).get(layer.index, layer.params)["filter"]
            out, e = K.train_conv_input_grad(p, rd(s.inputs[0]), exps[s.inputs[0]], rd(s.inputs[1]), filt)
            _store(plan, arena, s.outputs[0], out)
            exps[s.outputs[0]] = e
        elif s.kernel == "train_conv_update":
            t = by_name[s.name.rsplit(":", 1)[0]]
            gy, e = rd(s.inputs[0]), exps[s.inputs[0]]
            x_in = rd(s.inputs[2]) if len(s.inputs) > 2 else None
            if record is not None:
                _record(plan, t, p, gy, e, x_in, rd(s.inputs[1]), record)
            wd, bd = K.conv_deltas(p, gy, e, x_in, rd(s.inputs[1]))
            if s.outputs:  # unordered: keep the updates in the arena until the end
                parts = ([wd.reshape(-1)] if wd is not None else []) + ([bd] if bd is not None else [])
                _store(plan, arena, s.outputs[0], np.concatenate(parts).astype(np.int32))
            else:
                _apply(state, t, p, wd, bd)
        elif s.kernel == "train_conv_apply":
            t = by_name[s.name.rsplit(":", 1)[0]]
            nw, nb = K.delta_layout(p)
            d = rd(s.inputs[0]).astype(np.int64)
            wd = d[:nw].reshape(t.channels, int(p["k_h"]), int(p["k_w"]), int(p["in_per_group"])) if nw else None
            _apply(state, t, p, wd, d[nw:nw + nb] if nb else None)
        else:
            raise AssertionError(f"no reference for training kernel {s.kernel}")
    return loss


def _forward_index(plan: Plan, step) -> int:
    name = step.name.rsplit(":", 1)[0]
    for s in plan.steps:
        if s.name == name:
            return s.index
    raise KeyError(name)


def _apply(state: TrainState, t, p: dict, wd, bd) -> None:
    K.apply_deltas(p, wd, bd, state.arrays.get((t.layer, "fraction")), state.arrays.get((t.layer, "filter")),
                   state.arrays.get((t.layer, "bias")), state.arrays.get((t.layer, "velocity")))


def _record(plan: Plan, t, p: dict, gy, e: int, x, y, record: dict) -> None:
    """Real-valued gradients dL/dW (trained channels) and dL/db of a layer."""
    wacc, bacc = K.conv_gradients(p, gy, x, y)
    step = plan.steps[t.step]
    s_x = float(plan.graph.tensors[step.node.inputs[0]].quant.scale[0])
    out = {}
    if t.bias:
        out["bias"] = bacc.astype(np.float64) * 2.0 ** e
    if wacc is not None:
        out["weight"] = wacc.astype(np.float64) * 2.0 ** e * s_x
    record[t.layer] = out


def trained_accuracy(plan: Plan, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                     y_val: np.ndarray) -> float:
    """Train from the initial state on (x_train, y_train), one sample a step,
    then the accuracy of the trained model on (x_val, y_val): what the
    generated C computes, bit for bit."""
    state = TrainState.initial(plan)
    arena = np.zeros(plan.arena_size, dtype=np.int8)
    for x, y in zip(x_train, y_train):
        train_step(plan, state, x, int(y), arena=arena)
    return accuracy(plan, x_val, y_val, state)


def accuracy(plan: Plan, x: np.ndarray, y: np.ndarray, state: TrainState | None = None) -> float:
    """Top-1 accuracy of the model with `state` (None: as compiled) on int8 inputs x (IR layout)."""
    state = TrainState.initial(plan) if state is None else state
    out = np.stack([infer(plan, state, xi) for xi in x]).reshape(len(x), -1)
    return float((out.argmax(1) == np.asarray(y)).mean())

