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
from ..ir import Graph, McuforgeError
from ..plan import Plan, _best_memory, lower
from .autodiff import TrainingPlan, differentiate
from .policy import Policy, policy_from_options, weight_layers

__all__ = ["TrainingPlan", "Policy", "build_training_plan", "plan_with_policy"]


def plan_with_policy(graph: Graph, config: BuildConfig, policy: Policy) -> Plan:
    """Forward + backward steps of `policy`, planned in one arena."""
    steps, aliases = lower(graph)
    for k, s in enumerate(weight_layers(steps)):
        if k in policy.bias and s.params.get("bias") is None:
            s.params["bias"] = np.zeros(graph.tensors[s.outputs[0]].shape[-1], dtype=np.int32)
    tp, tensors = differentiate(graph, steps, aliases, policy, config)
    nodes = list(graph.nodes) + [s.node for s in tp.steps]
    pgraph = dataclasses.replace(graph, tensors={**graph.tensors, **tensors}, nodes=nodes)
    planned, mem = _best_memory(pgraph, steps + tp.steps, aliases, True)
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
