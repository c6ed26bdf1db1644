"""Patch-based inference benchmark.

Per model: the layer-by-layer arena peak, the best patch-based peak within
the default MAC-overhead bound (30%), the chosen split and grid, the MAC
overhead and the reduction factor — once with the whole input in the arena
(the default API, <name>_input()) and once with the input streamed tile by
tile (--input-stream, <name>_invoke_stream()), as MCUNetV2 does. Models: the zoo, MobileNetV2-0.35 at 96x96 and 144x144 (random
weights), and the MLPerf Tiny VWW model when ../shared/models is present.
Writes bench/results/patch.json and patch.md and refreshes the table in docs/patch.md.

    .venv/bin/python bench/patch.py
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402

SHARED_MODELS = ROOT.parent / "shared" / "models"


def graphs():
    from mcuforge.frontends.torch import from_torch
    from mcuforge.pipeline import canonicalize
    from mcuforge.quantize import quantize
    from mcuforge.zoo import ZOO, mobilenet_v2

    makers = dict(sorted(ZOO.items()))
    makers["mobilenetv2_035_96"] = lambda: mobilenet_v2(width=0.35, resolution=96)
    makers["mobilenetv2_035_144"] = lambda: mobilenet_v2(width=0.35, resolution=144)
    for name, make in makers.items():
        module, example = make()
        g = canonicalize(from_torch(module, example, name=name))
        shape = tuple(example.shape)
        calib = np.random.default_rng(0).standard_normal((4, shape[2], shape[3], shape[1])).astype(np.float32) \
            if len(shape) == 4 else np.random.default_rng(0).standard_normal((4,) + shape[1:]).astype(np.float32)
        yield name, quantize(g, {g.inputs[0]: calib})
    vww = SHARED_MODELS / "vww_96_int8.tflite"
    if vww.is_file():
        try:
            from mcuforge.pipeline import load_model
        except ImportError:
            return
        try:
            g = canonicalize(load_model(vww))
        except Exception as err:  # the TFLite frontend may be missing in this checkout
            print(f"vww: skipped ({err})", file=sys.stderr)
            return
        yield "vww (MLPerf Tiny)", quantize(g)


def best(graph, layer, stream: bool) -> dict:
    from mcuforge.config import BuildConfig
    from mcuforge.ir import McuforgeError
    from mcuforge.plan import best_patch_plan

    cfg = BuildConfig(name="m", schedule="patch", input_stream=stream)
    t0 = time.perf_counter()
    try:
        plan = best_patch_plan(graph, cfg, layer)
    except McuforgeError as err:
        return {"arena_bytes": None, "note": str(err).split(": ", 1)[-1]}
    st = plan.patch
    lowest = min(st.candidates, key=lambda c: (c["arena_bytes"], c["mac_overhead"]))
    return {"arena_bytes": plan.arena_size, "split": st.split, "split_layer": plan.steps[st.split - 1].name,
            "grid": st.grid, "mac_overhead": round(st.mac_overhead, 4),
            "reduction": round(layer.arena_size / plan.arena_size, 3), "candidates": len(st.candidates),
            "lowest_any_overhead": {k: lowest[k] for k in ("arena_bytes", "split", "grid", "mac_overhead")},
            "planning_seconds": round(time.perf_counter() - t0, 2)}


def measure(name, graph) -> dict:
    from mcuforge.config import BuildConfig
    from mcuforge.plan import build_plan

    layer = build_plan(graph, BuildConfig(name="m"))
    return {"model": name, "layer_arena_bytes": layer.arena_size, "layer_macs": layer.macs,
            "input_bytes": graph.tensors[graph.inputs[0]].nbytes,
            "patch": best(graph, layer, stream=False), "patch_input_stream": best(graph, layer, stream=True)}


def _cells(r: dict) -> str:
    if r["arena_bytes"] is None:
        return "— | — | — | —"
    return (f"{r['arena_bytes']:,} | {r['split']} (`{r['split_layer'][-24:]}`), {r['grid']}x{r['grid']} | "
            f"{r['mac_overhead']:.1%} | {r['reduction']:.2f}x")


def markdown(rows) -> str:
    out = ["| model | layer-by-layer peak (B) | input (B) | patch peak, input in arena (B) | split, grid | "
           "MAC overhead | reduction | patch peak, input streamed (B) | split, grid | MAC overhead | reduction |",
           "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['layer_arena_bytes']:,} | {r['input_bytes']:,} | {_cells(r['patch'])} | "
                   f"{_cells(r['patch_input_stream'])} |")
    notes = sorted({r["patch"]["note"] for r in rows if r["patch"]["arena_bytes"] is None})
    return "\n".join(out) + "\n" + "".join(f"\n— {n}\n" for n in notes)


def main() -> int:
    import torch

    torch.set_num_threads(2)
    rows = []
    for name, graph in graphs():
        row = measure(name, graph)
        print(json.dumps(row), flush=True)
        rows.append(row)
    write_results("patch", rows, markdown(rows), "patch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
