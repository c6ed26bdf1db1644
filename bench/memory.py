"""Memory benchmark: arena peak against the naive and per-op bounds.

For each zoo model, MobileNetV2-0.35 at 96x96 and 144x144 and
MobileNetV3-small 1.0 at 96x96 (random weights): the planned arena peak, the naive sum of all activations, the
largest single op's inputs + output, flash bytes (weights + code of the
Cortex-M4 objects) and the codegen time. Writes bench/results/memory.json and
bench/results/memory.md, and refreshes the table in docs/benchmarks.md.

    .venv/bin/python bench/memory.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import flash_bytes, write_results  # noqa: E402


def models():
    from mcuforge.zoo import ZOO, mobilenet_v2, mobilenet_v3_small

    for name in sorted(ZOO):
        yield name, ZOO[name]
    yield "mobilenetv2_035_96", lambda: mobilenet_v2(width=0.35, resolution=96)
    yield "mobilenetv2_035_144", lambda: mobilenet_v2(width=0.35, resolution=144)
    yield "mobilenetv3_small_100_96", lambda: mobilenet_v3_small(width=1.0, resolution=96)


def measure(name, make, workdir: Path) -> dict:
    from mcuforge.config import BuildConfig
    from mcuforge.frontends.torch import from_torch
    from mcuforge.pipeline import compile_model
    from mcuforge.tools.report import build_report

    module, example = make()
    graph = from_torch(module, example, name=name)
    calib = workdir / f"{name}_calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    out = workdir / name
    t0 = time.perf_counter()
    plan = compile_model(graph, BuildConfig(name=name, calibration=str(calib)), out)
    codegen_s = time.perf_counter() - t0
    rep = build_report(plan)
    dw_inplace = sum(1 for s in plan.steps if s.kernel == "depthwise_conv2d_s8_inplace")
    return {
        "model": name,
        "input": list(example.shape),
        "layers": len(plan.steps),
        "macs": plan.macs,
        "arena_bytes": plan.arena_size,
        "naive_bytes": rep["naive_activation_bytes"],
        "largest_op_bytes": rep["largest_op_bytes"],
        "inplace_depthwise_layers": dw_inplace,
        "weight_bytes": plan.weight_bytes,
        "flash_bytes_cortex_m4": flash_bytes(out, name),
        "codegen_seconds": round(codegen_s, 2),
    }


def markdown(rows: list[dict]) -> str:
    head = ("| model | arena peak (B) | naive sum (B) | largest op in+out (B) | peak / largest op | "
            "in-place DW | flash M4 (B) | codegen (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        lines.append(f"| {r['model']} | {r['arena_bytes']:,} | {r['naive_bytes']:,} | {r['largest_op_bytes']:,} | "
                     f"{r['arena_bytes'] / r['largest_op_bytes']:.3f} | {r['inplace_depthwise_layers']} | "
                     f"{r['flash_bytes_cortex_m4']:,} | {r['codegen_seconds']} |")
    return head + "\n".join(lines) + "\n"


def main() -> int:
    import torch

    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-") as tmp:
        for name, make in models():
            row = measure(name, make, Path(tmp))
            print(f"{name}: arena {row['arena_bytes']} B, largest op {row['largest_op_bytes']} B, "
                  f"naive {row['naive_bytes']} B, flash {row['flash_bytes_cortex_m4']} B", flush=True)
            rows.append(row)
    write_results("memory", rows, markdown(rows), "memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
