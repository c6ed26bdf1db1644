"""Latency co-design: a per-layer cost table measured under QEMU, and the
instructions of a network predicted from it.

`measure_table` compiles a few calibration networks (sampled from every
family for the data's shape), runs each once on the Cortex-M4 under QEMU with
the project's profiler (SysTick around every kernel call, instructions under
-icount, +-40 per call) and fits, per kernel function (the one the backend
links for the layer: ``mcf_conv2d_s8``, ...) and window (``/3x3``),

    instructions = a * MACs + b * output elements + c * input elements + d

by least squares over every profiled layer of that function. `predict` sums
the fitted cost over a plan's layers; a function the table has not seen is
costed by the mean instructions per MAC of the whole table (and flagged).

The instruction count is the cost figure until a cycle model exists; it is
measured with the same kernels and optimisation flag the search links.
"""
from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from .measure import ELF_OPT, ELF_TARGET, torch_module, workdir


def _size(shape) -> int:
    return int(np.prod(shape)) if shape else 0


def layer_rows(plan, instructions: list[int] | None = None) -> list[dict]:
    """(function, MACs, output and input elements[, instructions]) per layer of `plan`."""
    from ..registry import backend_for

    backend = backend_for(plan.config.kernels)
    t = plan.graph.tensors
    rows = []
    for i, s in enumerate(plan.steps):
        fn, _ = backend.kernel_of(plan, s)
        w = t.get(s.node.inputs[1]) if len(s.node.inputs) > 1 and s.node.inputs[1] else None
        if w is not None and w.data is not None and len(w.shape) == 4:  # a k x k window costs per MAC its own
            fn = f"{fn}/{w.shape[1]}x{w.shape[2]}"
        row = {"function": fn, "macs": int(s.macs), "out": sum(_size(t[o].shape) for o in s.outputs),
               "in": sum(_size(t[x].shape) for x in s.inputs)}
        if instructions is not None:
            row["instructions"] = int(instructions[i])
        rows.append(row)
    return rows


@dataclass
class CostTable:
    coefficients: dict[str, list[float]]  # function -> [a, b, c, d]
    per_mac: float  # fallback: instructions per MAC over every layer
    layers: int
    networks: int
    target: str = ELF_TARGET
    opt: str = ELF_OPT
    unseen: set = field(default_factory=set)

    def layer_cost(self, row: dict) -> float:
        c = self.coefficients.get(row["function"])
        if c is None:
            self.unseen.add(row["function"])
            return self.per_mac * max(row["macs"], row["out"])
        return max(0.0, c[0] * row["macs"] + c[1] * row["out"] + c[2] * row["in"] + c[3])

    def predict(self, plan) -> int:
        return int(round(sum(self.layer_cost(r) for r in layer_rows(plan))))

    def to_dict(self) -> dict:
        return {"coefficients": self.coefficients, "per_mac": self.per_mac, "layers": self.layers,
                "networks": self.networks, "target": self.target, "opt": self.opt}


def profile(net, input_shape, calibration: np.ndarray, name: str = "lat") -> tuple[object, list[int], int]:
    """Compile `net`, run it once under QEMU with the profiler: (plan,
    instructions per layer, instructions of the whole invoke)."""
    from ..pipeline import compile_model
    from ..quantize import quantize_values, to_ir_layout
    from ..tools import qemu
    from .families import export

    with tempfile.TemporaryDirectory(dir=workdir()) as tmp:
        tmp = Path(tmp)
        np.save(tmp / "cal.npy", calibration.astype(np.float32))
        plan = compile_model(export(net, input_shape, name), BuildConfig(name=name, calibration=str(tmp / "cal.npy")),
                             tmp / "c")
        x = to_ir_layout(plan.graph, quantize_values(calibration[:1], plan.graph.tensors[plan.input].quant))
        elf = qemu.build(plan, tmp / "c", tmp / "b", ELF_TARGET, opt=ELF_OPT, profile=True)
        _, stats = qemu.run(plan, elf, x, ELF_TARGET)
        return plan, stats.layer_instructions(), int(stats.instructions[0])


def calibration_designs(input_shape, classes: int, count: int = 9, seed: int = 0) -> list:
    from .families import FAMILIES, FamilySpace

    rng = random.Random(f"latency-{seed}")
    names = sorted(FAMILIES)
    out = []
    for i in range(count):
        space = FamilySpace(names[i % len(names)], input_shape, classes, rng.choice((0.25, 0.5)), 1.0)
        out.append(space.smallest() if i < len(names) else space.sample(rng))
    return out


def measure_table(input_shape, classes: int, calibration: np.ndarray, count: int = 9, seed: int = 0,
                  say=None) -> CostTable:
    from .families import build

    torch = torch_module()
    rows = []
    for i, design in enumerate(calibration_designs(input_shape, classes, count, seed)):
        torch.manual_seed(i)
        net = build(design)
        with torch.no_grad():
            net.classifier.bias.zero_()
        plan, per_layer, _ = profile(net, input_shape, calibration)
        rows += layer_rows(plan, per_layer)
        if say:
            say(f"latency table: network {i + 1}/{count} profiled ({len(per_layer)} layers)")
    return fit(rows, count)


def fit(rows: list[dict], networks: int) -> CostTable:
    coefficients = {}
    for fn in sorted({r["function"] for r in rows}):
        mine = [r for r in rows if r["function"] == fn]
        a = np.array([[r["macs"], r["out"], r["in"], 1.0] for r in mine], np.float64)
        y = np.array([r["instructions"] for r in mine], np.float64)
        sol, *_ = np.linalg.lstsq(a, y, rcond=None)
        coefficients[fn] = [float(v) for v in sol]
    macs = sum(max(r["macs"], r["out"]) for r in rows) or 1
    return CostTable(coefficients, sum(r["instructions"] for r in rows) / macs, len(rows), networks)
