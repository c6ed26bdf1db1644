"""On-device training: compile-time autodiff, update policies (bias, sparse,
full, or chosen by contribution analysis), quantization-aware scaling, and the
training plan the C backend and the NumPy reference execute.

A planning stage (DESIGN.md's data flow): autodiff, policy and QAS produce the
backward steps, which the planner plans with the forward steps through its
public functions. It imports the IR, the ops and the planner; the C backend
(codegen.training) and the NumPy reference (reference.training) execute what
it plans, and nothing it does runs code.
"""
from __future__ import annotations

from ..config import BuildConfig
from ..ir import Graph, McuforgeError
from ..plan import Plan, lower
from .autodiff import TrainingPlan
from .contribution import Scorer, choose_policy
from .planning import check_training_budget, describe, plan_with_policy, summary, trained_steps
from .policy import Policy, policy_from_options

__all__ = ["TrainingPlan", "Scorer", "trained_steps", "Policy", "build_training_plan", "plan_with_policy",
           "check_training_budget", "summary", "describe"]


def build_training_plan(graph: Graph, config: BuildConfig, scorer: "Scorer | None" = None) -> Plan:
    """The training step's plan. With --train-data the policy is chosen by
    contribution analysis, which measures candidates with `scorer` (the
    caller's: the pipeline hands in the NumPy reference's)."""
    if config.input_stream and config.schedule != "patch":
        raise McuforgeError("--input-stream: streaming the input patch by patch needs --schedule patch")
    if config.train_data:
        if scorer is None:
            raise TypeError("build_training_plan: --train-data needs a scorer for the candidates")
        return choose_policy(graph, config, scorer)
    steps, _ = lower(graph)
    return plan_with_policy(graph, config, policy_from_options(config, steps))
