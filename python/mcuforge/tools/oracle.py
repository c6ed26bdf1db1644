"""An independent oracle for the training step's gradients: PyTorch autograd
on the same quantized model.

The forward is rebuilt in float from the plan's steps with the model's own
scales (weights s_w * w_q, biases s_x * s_w * b_q), and every layer's output
is replaced by its exact int8 value through a straight-through estimator
whose gradient is zero where the output sits on its int8 clamp (the fused
ReLU/ReLU6 bounds and saturation), i.e. the fake-quantized model. The loss is
float softmax cross-entropy. Autograd then gives dL/dW and dL/db in real
units for every trained tensor, to compare with the reference's integer
gradients (`reference.train_step(..., record=...)`).
"""
from __future__ import annotations

import numpy as np

from .. import reference
from ..plan import Plan
from ..training.policy import weight_layers


def _pool_matrix(p: dict, mean: bool) -> np.ndarray:
    in_h, in_w = int(p["in_h"]), int(p["in_w"])
    if mean:
        return np.full((1, in_h * in_w), 1.0 / (in_h * in_w))
    out_h, out_w = int(p["out_h"]), int(p["out_w"])
    a = np.zeros((out_h * out_w, in_h * in_w))
    for oy in range(out_h):
        for ox in range(out_w):
            hs, ws = oy * int(p["stride_h"]) - int(p["pad_top"]), ox * int(p["stride_w"]) - int(p["pad_left"])
            he, we = min(hs + int(p["k_h"]), in_h), min(ws + int(p["k_w"]), in_w)
            hs, ws = max(hs, 0), max(ws, 0)
            cells = [r * in_w + c for r in range(hs, he) for c in range(ws, we)]
            a[oy * out_w + ox, cells] = 1.0 / len(cells)
    return a


def gradients(plan: Plan, x: np.ndarray, label: int) -> dict[int, dict[str, np.ndarray]]:
    """Weight layer -> {"weight": dL/dW of the trained channels, shaped
    (channels, k_h, k_w, inputs per group), "bias": dL/db} by autograd, at the
    plan's initial parameters."""
    import torch
    import torch.nn.functional as F

    g = plan.graph
    ref = reference.run(plan, np.asarray(x, dtype=np.int8), keep_intermediates=True)
    acts = ref.intermediates
    tp = plan.training
    trained = {t.step: t for t in tp.layers}
    layer_index = {s.index: k for k, s in enumerate(weight_layers(plan.steps))}
    aliases = {n.outputs[0]: n.inputs[0] for n in g.nodes if n.op == "reshape"}

    def real(name: str) -> torch.Tensor:
        t = g.tensors[name]
        q = acts[name].astype(np.float64)
        return torch.tensor(float(t.quant.scale[0]) * (q - float(t.quant.zero_point[0])))

    vals: dict[str, torch.Tensor] = {plan.input: real(plan.input)}

    def get(name: str) -> torch.Tensor:
        while name not in vals and name in aliases:
            name = aliases[name]
        return vals[name]

    leaves = {}
    final = plan.steps[-1]
    logits_name = final.inputs[0] if final.kernel == "softmax_s8" else final.outputs[0]
    for s in plan.steps:
        if s.kernel == "softmax_s8" and s is final:
            break
        out = s.outputs[0]
        inputs = [get(i).reshape(g.tensors[i].shape) for i in s.inputs]
        needs = any(v.requires_grad for v in inputs) or s.index in trained
        if not needs:
            vals[out] = real(out)
            continue
        p = s.params
        y_t = g.tensors[out]
        if s.kernel.startswith(("conv2d", "depthwise", "fully_connected")):
            xq = g.tensors[s.node.inputs[0]].quant
            wt = g.tensors[s.node.inputs[1]]
            s_w = np.broadcast_to(np.asarray(wt.quant.scale, dtype=np.float64), (y_t.shape[-1],))
            t = trained.get(s.index)
            w_q = np.asarray(p["filter"], dtype=np.float64).reshape(wt.shape)
            scale_w = s_w if s.kernel.startswith("depth") else s_w.reshape((-1,) + (1,) * (len(wt.shape) - 1))
            w = torch.tensor(w_q * scale_w, requires_grad=t is not None)
            b_q = p["bias"] if p["bias"] is not None else np.zeros(y_t.shape[-1])
            b = torch.tensor(np.asarray(b_q, dtype=np.float64) * float(xq.scale[0]) * s_w,
                             requires_grad=t is not None)
            if t is not None:
                leaves[s.index] = (w, b)
            xin = inputs[0]
            if s.kernel.startswith("fully_connected"):
                k = int(p["in_features"])
                pre = xin.reshape(-1, k) @ w.T + b
            else:
                xn = xin.permute(0, 3, 1, 2)
                in_h, in_w = int(p["in_h"]), int(p["in_w"])
                rows = (int(p["out_h"]) - 1) * int(p["stride_h"]) + (int(p["k_h"]) - 1) * int(p["dilation_h"]) + 1
                cols = (int(p["out_w"]) - 1) * int(p["stride_w"]) + (int(p["k_w"]) - 1) * int(p["dilation_w"]) + 1
                pt, pl = int(p["pad_top"]), int(p["pad_left"])
                xn = F.pad(xn, (pl, cols - in_w - pl, pt, rows - in_h - pt))
                if s.kernel.startswith("depth"):
                    wn = w.permute(3, 0, 1, 2)  # (C*M, 1, kh, kw)
                    groups = int(p["in_c"])
                else:
                    wn = w.permute(0, 3, 1, 2)
                    groups = 1
                pre = F.conv2d(xn, wn, b, (int(p["stride_h"]), int(p["stride_w"])),
                               dilation=(int(p["dilation_h"]), int(p["dilation_w"])), groups=groups)
                pre = pre.permute(0, 2, 3, 1)
            use_mask = True
        elif s.kernel == "add_s8":
            pre, use_mask = inputs[0] + inputs[1], True
        elif s.kernel == "requantize_s8":
            pre, use_mask = inputs[0], True
        elif s.kernel in ("avg_pool_s8", "mean_s8"):
            a = torch.tensor(_pool_matrix(p, s.kernel == "mean_s8"))
            c = int(p["channels"])
            pre = a @ inputs[0].reshape(-1, c)
            use_mask = s.kernel == "avg_pool_s8" and (p["act_min"] > -128 or p["act_max"] < 127)
        else:
            raise AssertionError(f"oracle: no float op for {s.kernel}")
        pre = pre.reshape(y_t.shape)
        q = torch.tensor(acts[out].astype(np.int64).reshape(y_t.shape))
        if use_mask:
            m = ((q > int(p["act_min"])) & (q < int(p["act_max"]))).to(pre.dtype)
            pre = pre * m
        vals[out] = pre + (real(out).reshape(y_t.shape) - pre).detach()
    logits = get(logits_name).reshape(1, -1)
    loss = F.cross_entropy(logits, torch.tensor([int(label)]))
    loss.backward()
    out = {}
    for idx, (w, b) in leaves.items():
        t = trained[idx]
        s = plan.steps[idx]
        grads = {}
        if t.bias:
            grads["bias"] = b.grad.numpy().copy()
        if t.channels:
            gw = w.grad.numpy()
            if s.kernel.startswith("depth"):
                gw = gw[0, :, :, :t.channels].transpose(2, 0, 1)[..., None]
            elif s.kernel.startswith("fully_connected"):
                gw = gw[:t.channels, None, None, :]
            else:
                gw = gw[:t.channels]
            grads["weight"] = gw.copy()
        out[layer_index[idx]] = grads
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def compare(plan: Plan, x: np.ndarray, label: int) -> list[dict]:
    """Cosine similarity of the reference's gradient and autograd's for every
    trained tensor, at the initial state."""
    from ..reference import training as tref

    record: dict = {}
    tref.train_step(plan, tref.TrainState.initial(plan), x, label, record=record)
    want = gradients(plan, x, label)
    rows = []
    for layer in sorted(record):
        for what, got in record[layer].items():
            rows.append({"layer": layer, "name": plan.training.weight_layer_names[layer], "tensor": what,
                         "cosine": cosine(got, want[layer][what]),
                         "norm_ratio": float(np.linalg.norm(got) / max(np.linalg.norm(want[layer][what]), 1e-300))})
    return rows
