"""A report (report.json, built by codegen.report) as a text table and a PNG."""
from __future__ import annotations

from pathlib import Path

from ..codegen.report import build_report  # noqa: F401 (the CLI and tests take it from here)
from ..errors import BadInput


def _fmt(n: int) -> str:
    return f"{n:,}"


def _ratio(layer: int, patch: int) -> str:
    """How the patch arena compares with layer by layer, in words that stay true when it is larger."""
    if patch < layer:
        return f"{layer / patch:.2f}x less"
    if patch == layer:
        return "the same"
    return f"{patch / layer:.2f}x more: patch-based costs memory here"


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
                     f"{_fmt(pt['layer_arena_bytes'])} layer by layer ({_ratio(pt['layer_arena_bytes'], pt['arena_bytes'])}), "
                     f"{pt['mac_overhead']:.1%} extra MACs")
    if report.get("auto_schedule"):
        lines.append(f"schedule auto: {report['auto_schedule']}")
    if "portable_fallback_layers" in report:
        fallback = report["portable_fallback_layers"]
        kernels = report["config"]["kernels"]
        lines.append(f"kernels {kernels}: {len(report['layers']) - len(fallback)} layers on specialized kernels"
                     + (f"; portable kernel (no {kernels} variant) for {len(fallback)}: {', '.join(fallback)}"
                        if fallback else ", every layer"))
        chosen = [L for L in report["layers"] if L.get("variant_reason") and L.get("variant") != "default"
                  and "no " + kernels + " variant" not in L["variant_reason"]]
        if report.get("variant_sram_limit") is not None:
            lines.append(f"  variants chosen by the planner (SRAM limit {_fmt(report['variant_sram_limit'])} bytes; "
                         f"the other layers run their default variant, the fastest):")
            lines += [f"    {L['name']}: {L['variant']}: {L['variant_reason']}" for L in chosen]
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
    try:
        fig.savefig(path, metadata={"Software": None})
    except OSError as err:
        raise BadInput(f"{path}: cannot write the plot ({err.strerror or err}); give a path in an existing, "
                       "writable directory") from None
    finally:
        plt.close(fig)
    return path
