"""The Plan: graph + ordered steps + arena offsets + config.

It is the one object the code generator, the NumPy reference, the report and
the plots read. Nothing downstream re-derives shapes, lifetimes or offsets.
"""
from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .version import __version__
from .config import BuildConfig
from .bounds import check_accumulators
from .ir import BudgetError, Graph, McuforgeError, Node, UnsupportedModelError
from .memory import MemoryPlan, plan_memory
from .ops import OPS, Step, check_supported
from .ops16 import check_supported16, is_int16, lower16
from .schedule.patch import DEFAULT_MAX_MAC_OVERHEAD, PatchStage, candidates, patch_steps, valid_split

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
    patch: "PatchStage | None" = None  # the per-patch stage of a patch schedule
    training: Any = None  # mcuforge.training.TrainingPlan of a --training build (backward steps, policy, state)

    # ---- convenient views ------------------------------------------------
    @property
    def arena_size(self) -> int:
        return self.memory.arena_size

    @property
    def input(self) -> str:
        return self.graph.inputs[0]

    @property
    def inputs(self) -> list[str]:
        """Every model input, in order; a run's input record is their bytes one after the other."""
        return list(self.graph.inputs)

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
        """MACs of one inference (a patch schedule's include its recomputation)."""
        if self.patch is not None:
            return self.patch.macs
        return sum(s.macs for s in self.steps)

    @property
    def input_stream(self) -> bool:
        """The model input arrives tile by tile through a read callback (never whole in the arena)."""
        return self.patch is not None and self.patch.input_stream

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
    check_supported16(graph)
    steps: list[Step] = []
    aliases: list[tuple[str, str]] = []
    for node in graph.nodes:
        spec = OPS[node.op]
        if spec.alias:
            aliases.append((node.inputs[0], node.outputs[0]))
            continue
        try:
            step = lower16(node, graph) if is_int16(node, graph) else spec.lower(node, graph)
        except ValueError as err:  # a scale ratio the int8 kernels cannot represent
            raise UnsupportedModelError(
                f"{graph.source or graph.name}: layer '{node.name}' ({node.op}): {err}; its scales are out of "
                f"the range int8 kernels support (the model is corrupt or not quantized for int8)") from None
        step.index = len(steps)
        steps.append(step)
    check_accumulators(steps, graph)
    return steps, aliases


def _scratch_size(config: BuildConfig):
    """Scratch bytes of a step for the kernel set the configuration chooses."""
    from .registry import backend_for

    return backend_for(config.kernels).scratch_size


def _fresh(steps: list[Step]) -> list[Step]:
    return [dataclasses.replace(s) for s in steps]


def plan_steps(graph: Graph, steps: list[Step], aliases, allow_inplace: bool, scratch, prefix_len: int = 0):
    """Plan memory with and without in-place reuse (which merges lifetimes, and
    a greedy placement does not always turn that into a lower peak); keep the
    lower. Returns (steps as planned, MemoryPlan)."""
    best = None
    for inplace in ((True, False) if allow_inplace else (False,)):
        attempt = steps[:prefix_len] + _fresh(steps[prefix_len:])
        mem = plan_memory(graph, attempt, aliases, scratch_size=scratch, allow_inplace=inplace)
        if best is None or mem.arena_size < best[1].arena_size:
            best = (attempt, mem)
    return best


def build_plan(graph: Graph, config: BuildConfig, allow_inplace: bool = True) -> Plan:
    """Layer-by-layer plan of a quantized graph."""
    if not graph.inputs:
        raise McuforgeError(f"{graph.source or graph.name}: the model has no input")
    steps, aliases = lower(graph)
    if not steps:
        raise McuforgeError(f"{graph.source or graph.name}: the model computes nothing (no layers)")
    from .registry import backend_for

    chooser = backend_for(config.kernels).choose_variants if config.kernel_variants == "auto" else None
    chosen = None
    if chooser is None:
        steps, mem = plan_steps(graph, steps, aliases, allow_inplace, _scratch_size(config))
    else:  # each layer's kernel variant, within the budgets (codegen/variants.py)
        steps, mem, *chosen = chooser(graph, steps, aliases, allow_inplace, config, plan_steps)
    for i, st in enumerate(steps):
        st.index = i
    name = config.name or graph.name
    plan = Plan(graph=graph, steps=steps, memory=mem, config=config, name=name)
    if chosen:
        plan.extra["variants"], plan.extra["variant_reasons"], plan.extra["variant_sram_limit"] = chosen
    return plan


def build_patch_plan(graph: Graph, config: BuildConfig, split: int, grid: int, layer: Plan,
                     lowered=None, tail: tuple = (), scratch=None) -> Plan | None:
    """The patch schedule of steps[:split] on a grid x grid array of tiles
    (None when that grid does not fit the stage output).

    tail: (steps, their tensors) run after the forward steps and planned in
    the same arena (a training build's backward pass); the planned tail steps
    are ``plan.extra["tail"]``, indexed after the forward steps. scratch: the
    scratch size function (default: the configured kernel set's)."""
    steps, aliases = lowered or lower(graph)
    tail_steps, tail_tensors = tail or ([], {})
    stream = config.input_stream
    res = patch_steps(graph, steps, split, grid, stream)
    if res is None:
        return None
    pseudo, copy_step, patch_tensors, tiles, stage_macs, tensor, names = res
    model_input = graph.inputs[0]
    # for planning: T is live from the first patch on; the whole model input
    # until the last copy, or (streamed) its patch buffer from each tile's start
    first_outputs = [tensor] + ([names[model_input]] if stream else [])
    mem_stage = [dataclasses.replace(p, outputs=p.outputs + (first_outputs if k == 0 else []))
                 for k, p in enumerate(pseudo)]
    mem_stage.append(dataclasses.replace(copy_step, inputs=copy_step.inputs + ([] if stream else [model_input])))
    stage_ids = {id(s.node) for s in steps[:split]}
    nodes = [Node(s.name, s.node.op, list(s.inputs), list(s.outputs)) for s in mem_stage]
    nodes += [n for n in graph.nodes if id(n) not in stage_ids] + [s.node for s in tail_steps]
    tensors = {**graph.tensors, **patch_tensors, **tail_tensors}
    pgraph = dataclasses.replace(graph, tensors=tensors, nodes=nodes, inputs=[] if stream else list(graph.inputs))
    rest = steps[split:]
    planned, mem = plan_steps(pgraph, mem_stage + rest + list(tail_steps), aliases, True,
                                scratch or _scratch_size(config), prefix_len=len(mem_stage))
    n = len(mem_stage) + len(rest)
    stage_steps = pseudo + [copy_step] + planned[len(mem_stage):n]
    for i, st in enumerate(stage_steps + planned[n:]):
        st.index = i
    rest_macs = sum(s.macs for s in rest)
    stage = PatchStage(split=split, grid=grid, tensor=tensor, tiles=tiles, buffers=names,
                       macs=stage_macs + rest_macs, layer_macs=layer.macs, layer_arena=layer.arena_size,
                       layer_live_bytes=list(layer.memory.live_bytes), input_stream=stream)
    g = dataclasses.replace(graph, tensors=tensors)
    plan = Plan(graph=g, steps=stage_steps, memory=mem, config=config, name=layer.name, schedule="patch",
                patch=stage)
    if tail_steps:
        plan.extra["tail"] = planned[n:]
    return plan


def best_patch_plan(graph: Graph, config: BuildConfig, layer: Plan, lowered=None, max_split: int | None = None,
                    tail: tuple = (), scratch=None) -> Plan:
    """Lowest peak over every (split, grid) whose MAC overhead is within the
    bound; exact peaks from the memory planner. max_split: no stage longer
    than that many layers; tail, scratch: as build_patch_plan."""
    bound = config.patch_max_overhead if config.patch_max_overhead is not None else DEFAULT_MAX_MAC_OVERHEAD
    lowered = lowered or lower(graph)
    steps = lowered[0]
    if config.input_stream and graph.tensors[graph.inputs[0]].dtype != "int8":
        raise McuforgeError(f"{graph.source or graph.name}: --input-stream: streaming a 16x8 model's int16 input "
                            f"is not supported; drop --input-stream")
    evaluated = []
    best = None
    for split, grid in candidates(graph, steps, config.patch_grid):
        if max_split is not None and split > max_split:
            continue
        p = build_patch_plan(graph, config, split, grid, layer, lowered, tail, scratch)
        if p is None:
            continue
        row = {"split": split, "split_layer": steps[split - 1].name, "grid": grid, "arena_bytes": p.arena_size,
               "mac_overhead": round(p.patch.mac_overhead, 4)}
        evaluated.append(row)
        if p.patch.mac_overhead > bound:
            continue
        key = (p.arena_size, p.patch.mac_overhead, grid, split)
        if best is None or key < best[0]:
            best = (key, p)
    where = graph.source or graph.name
    if not evaluated:
        why = valid_split(graph, steps, 1) or "no grid fits the stage output"
        raise McuforgeError(f"{where}: no layer prefix of this model can run on patches ({why}); "
                            "use --schedule layer")
    if best is None:
        low = min(evaluated, key=lambda r: r["mac_overhead"])
        raise McuforgeError(
            f"{where}: every patch plan costs more than {bound:.0%} extra MACs (lowest: {low['mac_overhead']:.1%} "
            f"at split after '{low['split_layer']}', grid {low['grid']}); raise "
            "--patch-max-overhead (CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT, PATCH_MAX_OVERHEAD of mcuforge_add_model)")
    plan = best[1]
    plan.patch.candidates = evaluated
    return plan


def plan_schedule(graph: Graph, config: BuildConfig) -> Plan:
    """The schedule the configuration asks for; never a silent fallback."""
    if config.input_stream and config.schedule != "patch":
        raise McuforgeError("--input-stream: streaming the input patch by patch needs --schedule patch")
    layer = build_plan(graph, config)
    if config.schedule == "layer":
        return layer
    fits = lambda p: config.sram_budget is None or p.sram_bytes() <= config.sram_budget  # noqa: E731
    if len(graph.inputs) > 1 and (config.schedule == "patch" or not fits(layer)):
        raise (McuforgeError if config.schedule == "patch" else BudgetError)(
            f"model '{layer.name}' has {len(graph.inputs)} inputs: the patch-based schedule needs exactly one; "
            + ("use --schedule layer" if config.schedule == "patch" else
               f"layer by layer it needs {layer.sram_bytes()} bytes of SRAM, the budget allows "
               f"{config.sram_budget}: raise --sram-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB)"))
    if config.schedule == "auto" and fits(layer):
        layer.extra["auto"] = "layer by layer fits the SRAM budget"
        return layer
    try:
        patch = best_patch_plan(graph, config, layer)
    except McuforgeError:
        if config.schedule == "auto":
            raise BudgetError(
                f"model '{layer.name}' needs {layer.sram_bytes()} bytes of SRAM layer by layer, the budget allows "
                f"{config.sram_budget}, and no patch schedule is possible: raise --sram-budget "
                "(CONFIG_MCUFORGE_SRAM_BUDGET_KB)") from None
        raise
    if config.schedule == "auto":
        patch.extra["auto"] = (f"layer by layer needs {layer.sram_bytes()} bytes, over the budget "
                               f"{config.sram_budget}: patch-based")
        if not fits(patch):
            raise BudgetError(
                f"model '{layer.name}' does not fit {config.sram_budget} bytes of SRAM: layer by layer needs "
                f"{layer.sram_bytes()}, the best patch schedule (grid {patch.patch.grid}, {patch.patch.split} layers "
                f"per patch) needs {patch.sram_bytes()}; raise --sram-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB) to "
                f"at least {(patch.sram_bytes() + 1023) // 1024}K or allow more MAC overhead "
                f"(--patch-max-overhead (CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT, PATCH_MAX_OVERHEAD of mcuforge_add_model))")
    return patch


def _patch_would_fit(plan: Plan) -> str:
    """For a layer-by-layer plan over its budget: the sentence saying the patch schedule fits, or ''."""
    cfg = plan.config
    if cfg.schedule != "layer" or plan.training is not None or plan.patch is not None:
        return ""
    try:
        patch = best_patch_plan(plan.graph, cfg, plan)
    except McuforgeError:
        return ""
    if patch.sram_bytes() > cfg.sram_budget:
        return ""
    return (f"; the patch-based schedule fits: {patch.sram_bytes()} bytes (grid {patch.patch.grid}, "
            f"{patch.patch.mac_overhead:.1%} extra MACs) with --schedule auto (CONFIG_MCUFORGE_SCHEDULE_AUTO, "
            "SCHEDULE auto of mcuforge_add_model)")


def check_budget(plan: Plan) -> None:
    cfg = plan.config
    if cfg.sram_budget is not None and plan.sram_bytes() > cfg.sram_budget:
        raise BudgetError(
            f"model '{plan.name}' needs {plan.sram_bytes()} bytes of SRAM (arena {plan.arena_size}), "
            f"the budget allows {cfg.sram_budget}: raise --sram-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB) "
            f"to at least {(plan.sram_bytes() + 1023) // 1024}K or use a smaller model" + _patch_would_fit(plan))
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

