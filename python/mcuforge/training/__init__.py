"""On-device training: compile-time autodiff, update policies (bias, sparse,
full, or chosen by contribution analysis), quantization-aware scaling, and the
training plan the C backend and the NumPy reference execute.

This package sits beside quantize and plan: it imports the IR, the ops and
the planner; nothing below it imports it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..config import BuildConfig
from ..ir import BudgetError, Graph, McuforgeError
from ..plan import Plan, _best_memory, lower
from .autodiff import TrainingPlan, differentiate
from .policy import Policy, policy_from_options, weight_layers

__all__ = ["TrainingPlan", "trained_steps", "Policy", "build_training_plan", "plan_with_policy", "check_training_budget", "summary", "describe"]

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


def plan_with_policy(graph: Graph, config: BuildConfig, policy: Policy) -> Plan:
    """Forward + backward steps of `policy`, planned in one arena."""
    steps, aliases = lower(graph)
    for k, s in enumerate(weight_layers(steps)):
        if k in policy.bias and s.params.get("bias") is None:
            s.params["bias"] = np.zeros(graph.tensors[s.outputs[0]].shape[-1], dtype=np.int32)
    tp, tensors = differentiate(graph, steps, aliases, policy, config)
    nodes = list(graph.nodes) + [s.node for s in tp.steps]
    pgraph = dataclasses.replace(graph, tensors={**graph.tensors, **tensors}, nodes=nodes)
    planned, mem = _best_memory(pgraph, steps + tp.steps, aliases, True, _training_scratch(config, tp))
    for i, st in enumerate(planned):
        st.index = i
    n = len(steps)
    tp.steps = planned[n:]
    plan = Plan(graph=dataclasses.replace(graph, tensors=pgraph.tensors), steps=planned[:n], memory=mem,
                config=config, name=config.name or graph.name)
    plan.training = tp
    plan.extra["other_ram"] = tp.state_bytes
    return plan


def build_training_plan(graph: Graph, config: BuildConfig) -> Plan:
    if config.schedule == "patch" or config.patch_grid:
        raise McuforgeError(f"--training {config.training}: training with the patch-based schedule is not "
                            "supported; use --schedule layer (or auto, which then plans layer by layer)")
    if config.train_data:
        from .contribution import choose_policy

        return choose_policy(graph, config)
    steps, _ = lower(graph)
    return plan_with_policy(graph, config, policy_from_options(config, steps))


def summary(plan: Plan) -> dict:
    """The training section of report.json."""
    tp = plan.training
    n = len(plan.steps)
    live = plan.memory.live_bytes
    return {
        "policy": tp.policy.as_dict(),
        "description": tp.policy.describe(tp.weight_layer_names),
        "learning_rate": tp.learning_rate,
        "quantization_aware_scaling": tp.qas,
        "operator_reordering": tp.reorder,
        "classes": tp.classes,
        "memory": {**tp.memory(), "arena_bytes": plan.arena_size, "sram_bytes": plan.sram_bytes(),
                   "forward_peak_live_bytes": max(live[:n]), "backward_peak_live_bytes": max(live[n:], default=0)},
        "saved_activations": tp.saved_activations,
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
    m = tp.memory()
    return (f"training: {tp.policy.describe(tp.weight_layer_names)}; SRAM {plan.sram_bytes()} bytes = arena "
            f"{plan.arena_size} + trained state {tp.state_bytes} (biases {m['bias_bytes']}, int16 master weights "
            f"{m['master_weight_bytes']}, int8 filter copies {m['filter_copy_bytes']}); learning rate "
            f"{tp.learning_rate:g}, QAS {'on' if tp.qas else 'off'}, reordering {'on' if tp.reorder else 'off'}")
