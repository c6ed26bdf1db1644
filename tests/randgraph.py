"""Seeded random quantized graphs built directly in the IR (no frontend), for
planner property tests."""
from __future__ import annotations

import numpy as np

from mcuforge.ir import Graph, Node, Quant, Tensor, conv_out_size


def _act_quant(rng) -> Quant:
    return Quant(scale=float(rng.uniform(0.01, 0.1)), zero_point=int(rng.integers(-20, 20)))


def random_graph(seed: int, max_nodes: int = 14) -> Graph:
    rng = np.random.default_rng(seed)
    tensors: dict[str, Tensor] = {}
    nodes: list[Node] = []
    h = int(rng.integers(5, 14))
    w = int(rng.integers(5, 14))
    c = int(rng.integers(1, 9))
    x = Tensor("input", (1, h, w, c), "int8", quant=_act_quant(rng))
    tensors["input"] = x
    live = ["input"]  # candidate inputs of later nodes (4-D)

    def new_act(shape):
        name = f"t{len(tensors)}"
        tensors[name] = Tensor(name, shape, "int8", quant=_act_quant(rng))
        return name

    def const(name, data, quant=None):
        tensors[name] = Tensor(name, data.shape, str(data.dtype), data=data, quant=quant)
        return name

    n_nodes = int(rng.integers(3, max_nodes))
    for k in range(n_nodes):
        src = live[int(rng.integers(0, len(live)))] if rng.random() < 0.35 else live[-1]
        _, sh, sw, sc = tensors[src].shape
        op = rng.choice(["conv2d", "depthwise_conv2d", "add", "max_pool", "concat", "conv2d", "depthwise_conv2d"])
        name = f"n{k}"
        if op in ("conv2d", "depthwise_conv2d"):
            kh = int(rng.choice([1, 3, 5]))
            kw = kh
            s = int(rng.choice([1, 1, 2]))
            pads = tuple(int(v) for v in rng.integers(0, kh // 2 + 1, 4))
            oh = conv_out_size(sh, kh, s, 1, pads[0], pads[2])
            ow = conv_out_size(sw, kw, s, 1, pads[1], pads[3])
            if oh < 1 or ow < 1:
                continue
            oc = int(rng.integers(1, 12)) if op == "conv2d" else sc
            if op == "conv2d":
                wdata = rng.integers(-127, 128, (oc, kh, kw, sc)).astype(np.int8)
                axis = 0
            else:
                wdata = rng.integers(-127, 128, (1, kh, kw, oc)).astype(np.int8)
                axis = 3
            wq = Quant(scale=rng.uniform(0.001, 0.01, oc), zero_point=np.zeros(oc, dtype=np.int64), axis=axis)
            bias = rng.integers(-500, 500, oc).astype(np.int32)
            wn = const(f"{name}_w", wdata, wq)
            bn = const(f"{name}_b", bias)
            out = new_act((1, oh, ow, oc))
            attrs = dict(strides=(s, s), dilations=(1, 1), pads=pads,
                         act_min=0.0 if rng.random() < 0.5 else -np.inf, act_max=np.inf)
            if op == "depthwise_conv2d":
                attrs["depth_multiplier"] = 1
            nodes.append(Node(name, op, [src, wn, bn], [out], attrs))
        elif op == "add":
            same = [t for t in live if tensors[t].shape == tensors[src].shape and t != src]
            other = same[int(rng.integers(0, len(same)))] if same else src
            out = new_act(tensors[src].shape)
            nodes.append(Node(name, "add", [src, other], [out], dict(act_min=-np.inf, act_max=np.inf)))
        elif op == "max_pool":
            if sh < 2 or sw < 2:
                continue
            out_shape = (1, conv_out_size(sh, 2, 2, 1, 0, 0), conv_out_size(sw, 2, 2, 1, 0, 0), sc)
            out = new_act(out_shape)
            tensors[out].quant = tensors[src].quant
            nodes.append(Node(name, "max_pool", [src], [out], dict(kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))))
        else:  # concat on channels with any live tensor of the same spatial size
            same = [t for t in live if tensors[t].shape[1:3] == (sh, sw)]
            other = same[int(rng.integers(0, len(same)))]
            out = new_act((1, sh, sw, sc + tensors[other].shape[3]))
            nodes.append(Node(name, "concat", [src, other], [out], dict(axis=3)))
        live.append(nodes[-1].outputs[0])
    outputs = [live[-1]]
    if rng.random() < 0.3 and len(live) > 3 and live[-2] != "input":
        outputs.append(live[-2])
    g = Graph(name=f"rand{seed}", tensors=tensors, nodes=nodes, inputs=["input"], outputs=outputs,
              source_format="test")
    g.remove_unused()
    return g
