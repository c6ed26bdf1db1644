"""report.json: the per-layer report of a Plan, written beside the C it describes."""
from __future__ import annotations

from pathlib import Path

from ..plan import Plan, largest_op_bytes, model_summary, naive_activation_bytes
from ..version import __version__


def build_report(plan: Plan) -> dict:
    from ..ops import describe_step
    from ..registry import backend_for

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
            "variant": (plan.extra.get("variants") or {}).get(s.name),
            "variant_reason": (plan.extra.get("variant_reasons") or {}).get(s.name),
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
            from ..training import trained_steps

            trained = trained_steps(plan.training)
            report["portable_trained_layers"] = [L["name"] for L in layers if L["index"] in trained]
    if plan.patch is not None:
        report["patch"] = patch_summary(plan)
    if plan.extra.get("variant_sram_limit") is not None:
        report["variant_sram_limit"] = plan.extra["variant_sram_limit"]
    if plan.extra.get("auto"):
        report["auto_schedule"] = plan.extra["auto"]
    if plan.training is not None:
        from ..training import summary

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
