"""The compile flow end to end: model file -> output directory.

frontend -> passes -> whole-model check -> quantize -> plan -> budget ->
backend -> report.json + plan.pickle. Output appears atomically: it is
written into a temporary sibling directory and moved into place only when
everything succeeded, so a failed compile leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

from . import registry
from .config import BuildConfig
from .ir import Graph, McuforgeError
from .ops import check_supported
from .plan import BudgetError, Plan, check_budget, plan_schedule
from .untrusted import check_graph

Progress = Callable[[str], None]


def no_progress(_: str) -> None:
    pass


def stderr_progress(prefix: str = "mcuforge") -> Progress:
    start = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def load_model(path: Path, **options) -> Graph:
    path = Path(path)
    if not path.exists():
        raise McuforgeError(f"{path}: model file not found")
    if path.is_dir():
        raise McuforgeError(f"{path}: is a directory, expected a model file")
    fe = registry.frontend_for(path)
    try:
        return fe.load(path, **options)
    except McuforgeError as err:  # every error about the file names the file
        if str(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from None


def canonicalize(graph: Graph) -> Graph:
    check_graph(graph)
    for p in registry.passes():
        graph = p.run(graph)
    graph.remove_unused()
    check_supported(graph)
    return graph


def quantize_graph(graph: Graph, calibration: str | None, progress: Progress = no_progress,
                   activations: str = "int8") -> Graph:
    from .quantize import CalibrationWarning, load_calibration, quantize

    prequantized = all(graph.tensors[i].quant is not None for i in graph.inputs)
    if prequantized and activations != "int8":
        raise McuforgeError(f"{graph.source or graph.name}: --activations {activations}: the model is already "
                            "quantized and keeps its own scheme; the option applies to float models")
    if prequantized:
        progress("model is already quantized: keeping its scales and zero points")
        return quantize(graph)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CalibrationWarning)
        samples = load_calibration(Path(calibration) if calibration else None, graph)
    for w in caught:
        print(f"\nWARNING: {w.message}\n", file=sys.stderr, flush=True)
    n = len(next(iter(samples.values())))
    progress(f"calibrating on {n} sample(s)")
    return quantize(graph, samples, activations=activations)


def _check_available(config: BuildConfig) -> None:
    """Options the parser knows but this version cannot build yet fail clearly."""
    if config.patch_grid and config.schedule == "layer":
        raise McuforgeError("--patch-grid: only meaningful with --schedule patch or auto")
    registry.backend_for(config.kernels)  # a kernel set is a backend plugin: fail before any work


def plan_model(model: Path | Graph, config: BuildConfig, progress: Progress = no_progress) -> Plan:
    config = config.validate()
    _check_available(config)
    if isinstance(model, Graph):
        graph = model
    else:
        progress(f"loading {model}")
        graph = load_model(Path(model))
    graph = canonicalize(graph)
    qgraph = quantize_graph(graph, config.calibration, progress, config.activations)
    if config.training != "none":
        from .reference import training as reference_training
        from .training import Scorer, build_training_plan

        progress(f"planning the training step ({len(qgraph.nodes)} nodes, --training {config.training})")
        scorer = Scorer(reference_training.accuracy, reference_training.trained_accuracy)
        plan = build_training_plan(qgraph, config, scorer)
        tp = plan.training
        progress(f"training policy {tp.policy.describe(tp.weight_layer_names)}; arena {plan.arena_size} bytes, "
                 f"trainable state {tp.state_bytes} bytes")
    else:
        progress(f"planning memory ({len(qgraph.nodes)} nodes, schedule {config.schedule})")
        plan = plan_schedule(qgraph, config)
    if plan.patch is not None:
        st = plan.patch
        progress(f"patch schedule: {st.split} layers per patch on a {st.grid}x{st.grid} grid, arena "
                 f"{plan.arena_size} bytes (layer by layer {st.layer_arena}), {st.mac_overhead:.1%} extra MACs")
    return plan


@contextlib.contextmanager
def staged_output(outdir: Path):
    """Write into a temporary sibling of `outdir`; when the block ends without an error its files
    move into `outdir`, otherwise nothing appears there (nothing half-written). Yields the
    temporary directory and the list the moved files' destinations are appended to."""
    outdir = Path(outdir)
    parent = outdir.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise McuforgeError(f"{parent}: not a directory")
    parent.mkdir(parents=True, exist_ok=True)
    if outdir.exists() and not outdir.is_dir():
        raise McuforgeError(f"{outdir}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=parent))
    moved: list[Path] = []
    try:
        yield tmp, moved
        outdir.mkdir(exist_ok=True)
        for src in sorted(tmp.rglob("*")):
            if src.is_file():
                dst = outdir / src.relative_to(tmp)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                moved.append(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_outputs(plan: Plan, outdir: Path, progress: Progress = no_progress) -> list[Path]:
    """Generate into a temporary sibling, then move into `outdir`."""
    from .codegen.report import build_report
    from .stack import annotate as annotate_stack

    backend = registry.backend_for(plan.config.kernels)
    with staged_output(outdir) as (tmp, moved):
        progress(f"generating C ({backend.name} kernels)")
        backend.generate(plan, tmp)
        stack = annotate_stack(tmp, plan.name, plan.config.stack_target, progress=progress)
        report = build_report(plan)
        report["stack"] = stack
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        plan.save(tmp)
    return moved


def compile_model(model: Path | Graph, config: BuildConfig, outdir: Path, progress: Progress = no_progress,
                  warn_over_budget: bool = False) -> Plan:
    """Over budget raises BudgetError (exit 3) before anything is written, or with
    `warn_over_budget` prints the same message as a warning and writes the model."""
    plan = plan_model(model, config, progress)
    try:
        if plan.training is not None:
            from .training import check_training_budget

            check_training_budget(plan)
        check_budget(plan)
    except BudgetError as err:
        if not warn_over_budget:
            raise
        print(f"\nWARNING: {err} (--warn-only: writing it anyway)\n", file=sys.stderr, flush=True)
    write_outputs(plan, outdir, progress)
    return plan
