"""Automatic sparse policy by contribution analysis (--train-data FILE.npz
under --sram-budget).

The labelled data (``x`` in the model's own layout, ``y`` integer labels) is
split in two halves: each candidate is trained alone (one pass over the first
half, one image per step) and its gain is the accuracy it adds on the second half over the
untrained model. Candidates: the biases of each of the last
``BIAS_CANDIDATES`` weight layers, and the weights of each of the last
``WEIGHT_CANDIDATES`` weight layers at each ratio of ``RATIOS``. Then, in
order of gain per byte of SRAM, every candidate with a positive gain is added
while the whole policy (re-planned exactly) fits the budget.

This stage does not run anything itself: the caller hands in the scoring
functions (the pipeline hands the NumPy reference's, which computes what the
generated C computes, bit for bit), so no compiler stage reaches up into the
code generator or the runners.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import BuildConfig
from ..ir import BudgetError, Graph, McuforgeError
from ..plan import Plan, lower
from .planning import plan_with_policy
from .policy import Policy, weight_layers

BIAS_CANDIDATES = 6
WEIGHT_CANDIDATES = 4
RATIOS = (0.25, 1.0)
MAX_SAMPLES = 400


def load_train_data(path: str, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    from ..quantize import quantize_values, to_ir_layout

    p = Path(path)
    if not p.is_file():
        raise McuforgeError(f"--train-data: {p} not found")
    try:
        d = np.load(p)
        x, y = np.asarray(d["x"]), np.asarray(d["y"]).astype(np.int64).reshape(-1)
    except Exception as err:
        raise McuforgeError(f"--train-data: {p} is not an .npz with arrays 'x' and 'y' ({err})") from None
    t = graph.tensors[graph.inputs[0]]
    if len(x) != len(y) or len(x) < 4 or x[0].size != t.size:
        raise McuforgeError(f"--train-data: {p}: need at least 4 samples of {t.size} values each and one label "
                            f"per sample (x {x.shape}, y {y.shape})")
    x = x[:MAX_SAMPLES]
    y = y[:MAX_SAMPLES]
    if x.dtype != np.int8:
        x = quantize_values(x.astype(np.float32), t.quant)
    x = to_ir_layout(graph, x.reshape((len(x),) + tuple(x.shape[1:])))
    return x.reshape((len(x),) + t.shape[1:]), y


@dataclass(frozen=True)
class Scorer:
    """How candidates are measured: `accuracy(plan, x, y)` of the model as
    compiled, and `trained_accuracy(plan, x_train, y_train, x_val, y_val)`
    after one pass of training steps (inputs int8 in the IR layout)."""

    accuracy: Callable[..., float]
    trained_accuracy: Callable[..., float]


def choose_policy(graph: Graph, config: BuildConfig, scorer: Scorer) -> Plan:
    x, y = load_train_data(config.train_data, graph)
    steps, _ = lower(graph)
    count = len(weight_layers(steps))
    classes = graph.tensors[graph.outputs[0]].size
    if y.min() < 0 or y.max() >= classes:
        raise McuforgeError(f"--train-data: labels must be in 0..{classes - 1}")
    half = len(x) // 2
    x_tr, y_tr, x_va, y_va = x[:half], y[:half], x[half:], y[half:]
    # candidates are measured layer by layer (the schedule changes memory, not what is learned); the chosen
    # set is planned on the configured schedule under the budget
    cfg = replace(config, train_data=None, sram_budget=None, schedule="layer", patch_grid=0)
    fit_cfg = replace(config, train_data=None)
    candidates: list[tuple[str, Policy]] = []
    for k in range(max(0, count - BIAS_CANDIDATES), count):
        candidates.append((f"bias of layer {k}", Policy("sparse", {k}, {})))
    for k in range(max(0, count - WEIGHT_CANDIDATES), count):
        for r in RATIOS:
            candidates.append((f"weights of layer {k} at {r:g}", Policy("sparse", set(), {k: r})))
    rows = []
    base_plan = plan_with_policy(graph, cfg, candidates[0][1] if count < 1 else Policy("bias", {count - 1}, {}))
    baseline = scorer.accuracy(base_plan, x_va, y_va)
    for what, pol in candidates:
        try:
            plan = plan_with_policy(graph, cfg, pol)
        except BudgetError:
            raise
        except McuforgeError as err:  # e.g. no backward op below this layer
            rows.append({"candidate": what, "skipped": str(err), "gain": 0.0, "sram_bytes": 0,
                         "bias": [], "weights": {}})
            continue
        acc = scorer.trained_accuracy(plan, x_tr, y_tr, x_va, y_va)
        rows.append({"candidate": what, "accuracy": acc, "gain": round(acc - baseline, 4),
                     "sram_bytes": plan.sram_bytes(), "bias": sorted(pol.bias),
                     "weights": {str(k): v for k, v in pol.weights.items()}})
    chosen = Policy("sparse", set(), {}, source="contribution analysis")
    best = None
    order = sorted(rows, key=lambda r: (-r["gain"] / max(r["sram_bytes"], 1), r["candidate"]))
    for r in order:
        if r["gain"] <= 0 or "skipped" in r:
            continue
        trial = Policy("sparse", chosen.bias | set(r["bias"]),
                       {**chosen.weights, **{int(k): max(v, chosen.weights.get(int(k), 0.0))
                                             for k, v in r["weights"].items()}}, source=chosen.source)
        try:
            plan = plan_with_policy(graph, fit_cfg, trial)
        except McuforgeError:  # patch/auto: no patch stage below the layers this set reaches
            continue
        if config.sram_budget is None or plan.sram_bytes() <= config.sram_budget:
            chosen, best = trial, plan
            r["chosen"] = True
    if best is None:
        smallest = min((r for r in rows if "skipped" not in r), key=lambda r: r["sram_bytes"])
        raise BudgetError(
            f"--train-data: no training candidate with a positive gain fits --sram-budget {config.sram_budget} "
            f"(the smallest, {smallest['candidate']}, needs {smallest['sram_bytes']} bytes; baseline accuracy "
            f"{baseline:.1%}); raise --sram-budget or give more or other labelled data")
    best.config = config
    gain = sum(r["gain"] for r in rows if r.get("chosen"))
    best.training.gains = {
        "baseline_accuracy": baseline, "samples": len(x), "candidates": rows,
        "summary": f"baseline {baseline:.1%} on {len(x_va)} held-out samples; chosen candidates add "
                   f"{gain:+.1%} measured one by one; {best.sram_bytes()} bytes of SRAM"}
    return best
