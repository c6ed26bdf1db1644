"""The Plan: graph + ordered steps + arena offsets + config.

It is the one object the code generator, the NumPy reference, the report and
the plots read. Nothing downstream re-derives shapes, lifetimes or offsets.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .config import BuildConfig
from .ir import BudgetError, Graph, McuforgeError
from .memory import MemoryPlan, plan_memory
from .ops import OPS, Step, check_supported

PLAN_FILE = "plan.pickle"


@dataclass
class Plan:
    graph: Graph  # quantized
    steps: list[Step]
    memory: MemoryPlan
    config: BuildConfig
    name: str
    schedule: str = "layer"
    generator_version: str = __version__
    extra: dict = field(default_factory=dict)

    # ---- convenient views ------------------------------------------------
    @property
    def arena_size(self) -> int:
        return self.memory.arena_size

    @property
    def input(self) -> str:
        return self.graph.inputs[0]

    @property
    def outputs(self) -> list[str]:
        return list(self.graph.outputs)

    def offset(self, tensor: str) -> int:
        return self.memory.tensor_offsets[tensor]

    @property
    def weight_bytes(self) -> int:
        return sum(s.weight_bytes for s in self.steps)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def sram_bytes(self) -> int:
        """Peak SRAM as DESIGN.md defines it: arena + other RAM the code defines."""
        return self.arena_size + int(self.extra.get("other_ram", 0))

    def save(self, directory: Path) -> Path:
        path = Path(directory) / PLAN_FILE
        with open(path, "wb") as f:
            pickle.dump(self, f, protocol=4)
        return path

    @staticmethod
    def load(directory: Path) -> "Plan":
        path = Path(directory) / PLAN_FILE
        if not path.is_file():
            raise McuforgeError(f"{directory}: no {PLAN_FILE}; is this an output directory of 'mcuforge compile'?")
        try:
            with open(path, "rb") as f:
                plan = pickle.load(f)
        except Exception as err:
            raise McuforgeError(f"{path}: unreadable plan ({err.__class__.__name__}); compile the model again") from None
        if getattr(plan, "generator_version", None) != __version__:
            raise McuforgeError(f"{path}: written by mcuforge {plan.generator_version}, this is {__version__}; "
                                "compile the model again")
        return plan


def lower(graph: Graph) -> tuple[list[Step], list[tuple[str, str]]]:
    """Steps for every node with a kernel, and the alias pairs of the others."""
    check_supported(graph)
    steps: list[Step] = []
    aliases: list[tuple[str, str]] = []
    for node in graph.nodes:
        spec = OPS[node.op]
        if spec.alias:
            aliases.append((node.inputs[0], node.outputs[0]))
            continue
        step = spec.lower(node, graph)
        step.index = len(steps)
        steps.append(step)
    return steps, aliases


def build_plan(graph: Graph, config: BuildConfig, allow_inplace: bool = True) -> Plan:
    """Layer-by-layer plan of a quantized graph."""
    from .kernels import SCRATCH_SIZE

    if len(graph.inputs) != 1:
        raise McuforgeError(f"{graph.source or graph.name}: exactly one model input is supported, "
                            f"this model has {len(graph.inputs)}")
    def scratch(step: Step) -> int:
        fn = SCRATCH_SIZE.get(step.kernel)
        return int(fn(step.params)) if fn else 0

    # In-place reuse merges lifetimes, which a greedy placement does not
    # always turn into a lower peak: plan both ways and keep the lower.
    best = None
    for inplace in ((True, False) if allow_inplace else (False,)):
        steps, aliases = lower(graph)
        if not steps:
            raise McuforgeError(f"{graph.source or graph.name}: the model computes nothing (no layers)")
        mem = plan_memory(graph, steps, aliases, scratch_size=scratch, allow_inplace=inplace)
        if best is None or mem.arena_size < best[1].arena_size:
            best = (steps, mem)
    steps, mem = best
    name = config.name or graph.name
    return Plan(graph=graph, steps=steps, memory=mem, config=config, name=name)


def check_budget(plan: Plan) -> None:
    cfg = plan.config
    if cfg.sram_budget is not None and plan.sram_bytes() > cfg.sram_budget:
        raise BudgetError(
            f"model '{plan.name}' needs {plan.sram_bytes()} bytes of SRAM (arena {plan.arena_size}), "
            f"the budget allows {cfg.sram_budget}: raise --sram-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB) "
            f"to at least {(plan.sram_bytes() + 1023) // 1024}K or use a smaller model")
    if cfg.flash_budget is not None and plan.weight_bytes > cfg.flash_budget:
        raise BudgetError(
            f"model '{plan.name}' needs {plan.weight_bytes} bytes of flash for its weights alone, "
            f"the budget allows {cfg.flash_budget}: raise --flash-budget (CONFIG_MCUFORGE_FLASH_BUDGET_KB)")


def largest_op_bytes(plan: Plan) -> int:
    """Largest single op's inputs + output (distinct tensors), a lower bound
    for any schedule that runs that op whole."""
    g = plan.graph
    best = 0
    for s in plan.steps:
        names = dict.fromkeys(s.inputs + s.outputs)
        best = max(best, sum(g.tensors[t].nbytes for t in names))
    return best


def naive_activation_bytes(plan: Plan) -> int:
    return sum(t.nbytes for t in plan.graph.activations())


def model_summary(plan: Plan) -> dict:
    g = plan.graph
    x = g.tensors[plan.input]
    return {
        "input_shape": list(x.shape),
        "input_scale": float(x.quant.scale[0]),
        "input_zero_point": int(x.quant.zero_point[0]),
        "outputs": [{"name": o, "shape": list(g.tensors[o].shape), "scale": float(g.tensors[o].quant.scale[0]),
                     "zero_point": int(g.tensors[o].quant.zero_point[0])} for o in g.outputs],
        "source_layout": g.source_layout,
    }


def tensor_bytes(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr).tobytes()
