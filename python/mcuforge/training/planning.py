"""The training step as a planning stage: autodiff's backward steps planned in
one arena with the forward steps (through the planner's public plan_steps and
best_patch_plan), on the layer or patch schedule; the training budget check and
the training section of the report."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..config import BuildConfig
from ..ir import BudgetError, Graph, McuforgeError
from ..plan import Plan, best_patch_plan, lower, plan_steps
from ..schedule.patch import valid_split
from .autodiff import TrainingPlan, differentiate
from .policy import Policy, policy_from_options, weight_layers

TRAIN_LESS = ("train less: --training bias, fewer --train-bias-layers, fewer --train-weight-layers or a smaller "
              "--train-weight-ratio (or give --train-data to choose a policy that fits)")


def check_training_budget(plan: Plan) -> None:
    """A training step over the SRAM budget: both numbers and what to change."""
    budget = plan.config.sram_budget
    if budget is None or plan.sram_bytes() <= budget:
        return
    tp = plan.training
    need = plan.sram_bytes()
    raise BudgetError(
        f"the training step of model '{plan.name}' ({tp.policy.describe(tp.weight_layer_names)}) needs {need} bytes "
        f"of SRAM (arena {plan.arena_size} + trained state {tp.state_bytes}), the budget allows {budget}: raise "
        f"--sram-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB) to at least {(need + 1023) // 1024}K or {TRAIN_LESS}")


def trained_steps(tp: TrainingPlan) -> set[int]:
    """Forward step indices whose filter or bias the training step updates in RAM
    (in the portable layout: their forward kernel is the portable one)."""
    return {t.step for t in tp.layers if t.bias or t.channels}


def _training_scratch(config: BuildConfig, tp: TrainingPlan):
    """Scratch bytes per step: the configured kernel set's for forward layers it
    runs, the portable kernel's for trained layers and backward steps."""
    from ..registry import backend_for, portable_scratch_size

    backend = backend_for(config.kernels).scratch_size
    portable = trained_steps(tp)

    def scratch(step) -> int:
        if step.kernel.startswith("train_") or step.index in portable:
            return portable_scratch_size(step)
        return backend(step)
    return scratch


def _attach(plan: Plan, tp: TrainingPlan, backward, shift: int = 0, split: int | None = None) -> Plan:
    """Give `plan` its training plan: `tp` with its backward steps as planned and
    its forward step indices moved by `shift` at and after `split` (the tile
    copy step a patch schedule inserts)."""
    move = (lambda i: i) if split is None else (lambda i: i + shift if i >= split else i)  # noqa: E731
    plan.training = dataclasses.replace(tp, steps=list(backward), lowest_reached=move(tp.lowest_reached),
                                        layers=[dataclasses.replace(t, step=move(t.step)) for t in tp.layers])
    plan.extra["other_ram"] = tp.state_bytes
    return plan


def _patch_training_plan(graph: Graph, config: BuildConfig, lowered, tp: TrainingPlan, tensors: dict,
                         layer: Plan) -> Plan:
    """The training step with the frozen prefix run on patches: the patch
    stage ends at or before the lowest layer the backward pass reaches, so no
    activation of the stage (but its assembled output) is read by backward."""
    steps = lowered[0]
    where = graph.source or graph.name
    limit = tp.lowest_reached
    reached = steps[limit].name if limit < len(steps) else "the loss"
    if config.training == "full":
        raise McuforgeError(
            f"--training full with --schedule {config.schedule}: a full update trains every weight layer down to "
            f"the first ('{tp.weight_layer_names[0]}'), so the backward pass reads the input activation of every "
            "layer and none of them is pure inference that could run on patches; use --schedule layer, or "
            "--training bias|sparse (the layers below the lowest one the backward pass reaches then run on patches)")
    if not any(valid_split(graph, steps, k) is None for k in range(1, limit + 1)):
        why = valid_split(graph, steps, 1) if limit >= 1 else "it is the first layer"
        raise McuforgeError(
            f"{where}: --training {config.training} with --schedule {config.schedule}: the backward pass reaches "
            f"down to layer {limit} ('{reached}'), and no layer prefix below it can run on patches ({why}); use "
            "--schedule layer, or train only later layers (fewer --train-bias-layers / --train-weight-layers)")
    plan = best_patch_plan(graph, config, layer, lowered, max_split=limit, tail=(tp.steps, tensors),
                           scratch=_training_scratch(config, tp))
    st = plan.patch
    produced = {o for s in steps[:st.split] for o in s.outputs} | {graph.inputs[0]}
    if set(tp.saved_activations) & (produced - {st.tensor}):
        raise McuforgeError(f"internal error: the backward pass reads activations of the patch stage "
                            f"{sorted(set(tp.saved_activations) & produced)}")
    return _attach(plan, tp, plan.extra.pop("tail"), shift=1, split=st.split)


def plan_with_policy(graph: Graph, config: BuildConfig, policy: Policy) -> Plan:
    """Forward + backward steps of `policy`, planned in one arena, on the
    schedule the configuration asks for (patch: the layers below the lowest
    one the backward pass reaches run tile by tile)."""
    steps, aliases = lower(graph)
    for k, s in enumerate(weight_layers(steps)):
        if k in policy.bias and s.params.get("bias") is None:
            s.params["bias"] = np.zeros(graph.tensors[s.outputs[0]].shape[-1], dtype=np.int32)
    tp, tensors = differentiate(graph, steps, aliases, policy, config)
    nodes = list(graph.nodes) + [s.node for s in tp.steps]
    pgraph = dataclasses.replace(graph, tensors={**graph.tensors, **tensors}, nodes=nodes)
    planned, mem = plan_steps(pgraph, steps + tp.steps, aliases, True, _training_scratch(config, tp))
    for i, st in enumerate(planned):
        st.index = i
    n = len(steps)
    layer = Plan(graph=dataclasses.replace(graph, tensors=pgraph.tensors), steps=planned[:n], memory=mem,
                 config=config, name=config.name or graph.name)
    _attach(layer, tp, planned[n:])
    if config.schedule == "layer":
        return layer
    budget = config.sram_budget
    if config.schedule == "auto" and (budget is None or layer.sram_bytes() <= budget):
        layer.extra["auto"] = "layer by layer fits the SRAM budget"
        return layer
    try:
        plan = _patch_training_plan(graph, config, (steps, aliases), tp, tensors, layer)
    except McuforgeError as err:
        if config.schedule == "auto":
            raise BudgetError(
                f"the training step of model '{layer.name}' needs {layer.sram_bytes()} bytes of SRAM layer by "
                f"layer, the budget allows {budget}, and no patch schedule is possible ({err}): raise --sram-budget "
                f"(CONFIG_MCUFORGE_SRAM_BUDGET_KB) to at least {(layer.sram_bytes() + 1023) // 1024}K or "
                f"{TRAIN_LESS}") from None
        raise
    if config.schedule == "auto":
        plan.extra["auto"] = (f"layer by layer the training step needs {layer.sram_bytes()} bytes, over the "
                              f"budget {budget}: patch-based")
    return plan


def summary(plan: Plan) -> dict:
    """The training section of report.json."""
    tp = plan.training
    n = len(plan.steps)
    live = plan.memory.live_bytes
    return {
        "policy": tp.policy.as_dict(),
        "description": tp.policy.describe(tp.weight_layer_names),
        "learning_rate": tp.learning_rate,
        "momentum": tp.momentum,
        "quantization_aware_scaling": tp.qas,
        "operator_reordering": tp.reorder,
        "classes": tp.classes,
        "memory": {**tp.memory(), "arena_bytes": plan.arena_size, "sram_bytes": plan.sram_bytes(),
                   "forward_peak_live_bytes": max(live[:n]), "backward_peak_live_bytes": max(live[n:], default=0)},
        "saved_activations": tp.saved_activations,
        "lowest_reached_layer": {"index": tp.lowest_reached,
                                 "name": plan.steps[tp.lowest_reached].name if tp.lowest_reached < n else "the loss"},
        "gradient_tensors": len(tp.grads),
        "backward_steps": [{"index": s.index, "name": s.name, "kernel": s.kernel, "macs": s.macs, "live_bytes": live[s.index]}
                           for s in tp.steps],
        "trained_layers": [{"layer": t.layer, "name": t.name, "bias": t.bias, "channels": t.channels, "out_channels": t.out_c}
                           for t in tp.layers],
        "gains": tp.gains,
    }


def describe(plan: Plan) -> str:
    """One line for the compile output."""
    tp = plan.training
    return (f"training: {tp.policy.describe(tp.weight_layer_names)}; SRAM {plan.sram_bytes()} bytes = arena "
            f"{plan.arena_size} + trained state {tp.state_bytes} ({tp.state_breakdown()}); learning rate "
            f"{tp.learning_rate:g}, momentum {tp.momentum:g}, QAS {'on' if tp.qas else 'off'}, reordering "
            f"{'on' if tp.reorder else 'off'}" + _patch_note(plan))


def _patch_note(plan: Plan) -> str:
    st = plan.patch
    if st is None:
        return ""
    return (f"; forward layers 0-{st.split - 1} run on a {st.grid}x{st.grid} grid of patches, below layer "
            f"{plan.training.lowest_reached} ('{plan.steps[plan.training.lowest_reached].name}'), the lowest the "
            f"backward pass reaches (layer by layer the arena would be {st.layer_arena} bytes)")
