"""Per-layer report of a Plan: a dict (report.json), a text table, a PNG."""
from __future__ import annotations

from pathlib import Path

from . import __version__
from .plan import Plan, largest_op_bytes, model_summary, naive_activation_bytes


def build_report(plan: Plan) -> dict:
    from .ops import describe_step
    from .registry import backend_for

    g = plan.graph
    backend = backend_for(plan.config.kernels)
    layers = []
    for s, live in zip(plan.steps, plan.memory.live_bytes):
        function, portable = backend.kernel_of(plan, s)
        layers.append({
            "function": function,
            "portable_kernel": portable,
            "index": s.index,
            "name": s.name,
            "op": s.node.op,
            "kernel": s.kernel,
            "description": describe_step(s, g),
            "macs": s.macs,
            "params": int(sum(g.tensors[t].size for t in s.node.inputs[1:] if t and g.tensors[t].is_const)),
            "weight_bytes": s.weight_bytes,
            "live_bytes": live,
            "scratch_bytes": s.scratch,
            "in_place": s.inplace_input >= 0,
            "inputs": [{"tensor": t, "offset": plan.offset(t), "bytes": g.tensors[t].nbytes} for t in s.inputs],
            "output": {"tensor": s.outputs[0], "offset": plan.offset(s.outputs[0]),
                       "bytes": g.tensors[s.outputs[0]].nbytes},
        })
    report = {
        "generator": f"mcuforge {__version__}",
        "name": plan.name,
        "source": Path(g.source).name if g.source else "",
        "source_format": g.source_format,
        "source_sha256": g.source_hash,
        "config": _config_for_report(plan),
        "schedule": plan.schedule,
        "arena_bytes": plan.arena_size,
        "sram_bytes": plan.sram_bytes(),
        "weight_bytes": plan.weight_bytes,
        "macs": plan.macs,
        "naive_activation_bytes": naive_activation_bytes(plan),
        "largest_op_bytes": largest_op_bytes(plan),
        "memory_strategy": plan.memory.strategy,
        "model": model_summary(plan),
        "runtime_sources": backend.runtime_sources(plan),
        "layers": layers,
    }
    if plan.config.kernels != "portable":
        # the layers with no variant in the chosen kernel set (tile copies are bookkeeping)
        report["portable_fallback_layers"] = [L["name"] for L in layers
                                              if L["portable_kernel"] and L["kernel"] != "copy_tile_s8"]
        if plan.training is not None:
            # layers the training step updates read their RAM parameters in the portable layout
            from .training import trained_steps

            trained = trained_steps(plan.training)
            report["portable_trained_layers"] = [L["name"] for L in layers if L["index"] in trained]
    if plan.patch is not None:
        report["patch"] = patch_summary(plan)
    if plan.extra.get("auto"):
        report["auto_schedule"] = plan.extra["auto"]
    if plan.training is not None:
        from .training import summary

        report["training"] = summary(plan)
    return report


def patch_summary(plan: Plan) -> dict:
    """The chosen split and grid, both schedules' peaks and MACs, and both
    memory profiles over the layers of the model (the tile copy merged into
    the stage's last layer)."""
    st = plan.patch
    live = list(plan.memory.live_bytes)
    by_layer = live[:st.split - 1] + [max(live[st.split - 1], live[st.split])] + live[st.split + 1:]
    return {
        "split": st.split,
        "split_layer": plan.steps[st.split - 1].name,
        "grid": st.grid,
        "tensor": st.tensor,
        "arena_bytes": plan.arena_size,
        "layer_arena_bytes": st.layer_arena,
        "reduction": round(st.layer_arena / plan.arena_size, 3),
        "macs": st.macs,
        "layer_macs": st.layer_macs,
        "mac_overhead": round(st.mac_overhead, 4),
        "live_bytes_by_layer": by_layer,
        "layer_live_bytes": st.layer_live_bytes,
        "candidates_evaluated": len(st.candidates),
    }


def _config_for_report(plan: Plan) -> dict:
    """The build options, with the calibration file named by file name and
    content hash (not its absolute path), so reports do not depend on where
    the build ran."""
    import hashlib

    cfg = plan.config.as_dict()
    if cfg.get("train_data"):
        cfg["train_data"] = Path(cfg["train_data"]).name
    if cfg.get("calibration"):
        path = Path(cfg["calibration"])
        cfg["calibration"] = path.name
        if path.is_file():
            cfg["calibration_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return cfg


def _fmt(n: int) -> str:
    return f"{n:,}"


def format_table(report: dict) -> str:
    rows = [("#", "layer", "op", "MACs", "params", "live bytes", "")]
    for L in report["layers"]:
        rows.append((str(L["index"]), L["name"][:32], L["description"][:60], _fmt(L["macs"]), _fmt(L["params"]),
                     _fmt(L["live_bytes"]), "peak" if L["live_bytes"] == max(x["live_bytes"] for x in report["layers"])
                     else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4, 5}
    lines = []
    for k, r in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"model {report['name']}: {len(report['layers'])} layers, {_fmt(report['macs'])} MACs, "
                 f"{_fmt(report['weight_bytes'])} constant bytes (flash)")
    if "patch" in report:
        pt = report["patch"]
        lines.append(f"patch-based: layers 0-{pt['split'] - 1} (through '{pt['split_layer']}') on a "
                     f"{pt['grid']}x{pt['grid']} grid; arena {_fmt(pt['arena_bytes'])} bytes against "
                     f"{_fmt(pt['layer_arena_bytes'])} layer by layer ({pt['reduction']}x less), "
                     f"{pt['mac_overhead']:.1%} extra MACs")
    if report.get("auto_schedule"):
        lines.append(f"schedule auto: {report['auto_schedule']}")
    if "portable_fallback_layers" in report:
        fallback = report["portable_fallback_layers"]
        kernels = report["config"]["kernels"]
        lines.append(f"kernels {kernels}: {len(report['layers']) - len(fallback)} layers on specialized kernels; "
                     f"portable kernel (no {kernels} variant) for {len(fallback)}"
                     + (f": {', '.join(fallback)}" if fallback else ""))
        if report.get("portable_trained_layers"):
            lines.append(f"  of which trained on device (their filters/biases are updated in RAM in the portable "
                         f"layout): {', '.join(report['portable_trained_layers'])}")
    lines.append(f"arena peak: {_fmt(report['arena_bytes'])} bytes (schedule {report['schedule']}); "
                 f"naive sum of activations {_fmt(report['naive_activation_bytes'])}; "
                 f"largest single op in+out {_fmt(report['largest_op_bytes'])}")
    return "\n".join(lines)


def plot_memory(report: dict, path: Path, others: dict[str, dict] | None = None) -> Path:
    """Bar chart of live activation bytes per layer, with the arena peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "patch" in report:
        pt = report["patch"]
        series = {"layer by layer": (pt["layer_live_bytes"], pt["layer_arena_bytes"]),
                  f"patch-based ({pt['grid']}x{pt['grid']}, {pt['split']} layers per patch)":
                      (pt["live_bytes_by_layer"], pt["arena_bytes"])}
    else:
        series = {"layer by layer": ([L["live_bytes"] for L in report["layers"]], report["arena_bytes"])}
    for label, rep in (others or {}).items():
        series[label] = ([L["live_bytes"] for L in rep["layers"]], rep["arena_bytes"])
    n = max(len(v[0]) for v in series.values())
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * n + 2), 4.0), dpi=100)
    for k, (label, (live, arena)) in enumerate(series.items()):
        ax.step(range(len(live)), [b / 1024 for b in live], where="mid", label=f"{label}: live activations",
                linewidth=1.5, color=f"C{k}")
        ax.axhline(arena / 1024, linestyle="--", linewidth=1, color=f"C{k}",
                   label=f"{label}: arena {arena / 1024:.1f} KiB")
    ax.set_xlabel("layer")
    ax.set_ylabel("KiB")
    ax.set_title(f"{report['name']}: SRAM over the layers")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
