"""TinyNAS benchmark on scikit-learn digits (8x8 grayscale, 10 classes).

Per budget (8 KB SRAM / 32 KB flash, 2 KB / 16 KB): `mcuforge nas`'s search
(space optimization, supernet, evolution, fine-tune) on the training split,
against the best MobileNetV2 scaled by width and resolution that fits the
same budget (every (width, resolution) of the grid measured exactly; the
fitting ones with the most MACs trained from scratch, the best on the
held-out part of the training split kept). Everything is scored on the same
test split (25%, never seen by the search): float accuracy and the int8
accuracy of the generated C run on this machine; peak SRAM and flash come
from the Cortex-M4 ELF. "Trained the same way": the searched architecture is
also trained from scratch with the baseline's recipe (same epochs, optimizer,
schedule). When no width/resolution-scaled MobileNetV2 fits, MobileNetV2
scaled in depth as well (fewer blocks per stage) is given as a second
reference. Also measured: candidate-evaluation throughput with 1 and 2
workers, on the local process pool and on a local Ray cluster.

Target: searched >= 2 points more accurate than the scaled baseline, or equal
accuracy in <= 70% of its peak SRAM.

    .venv/bin/python bench/nas.py            # ~30 min on 2 cores shared with other jobs
    .venv/bin/python bench/nas.py --space families   # the family space vs hand-drawn baselines
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, write_results  # noqa: E402

BUDGETS = ((8 * 1024, 32 * 1024), (2 * 1024, 16 * 1024))


def compiled_accuracy(net, data, x_test, y_test, budget) -> dict:
    """Compile `net` under `budget` (exact SRAM/flash from the Cortex-M4
    ELF) and classify the test split with the generated C on the host."""
    from mcuforge.tools import hostrun
    from mcuforge.config import BuildConfig
    from mcuforge.nas.measure import elf_memory, export_graph
    from mcuforge.pipeline import compile_model
    from mcuforge.quantize import quantize_values, to_ir_layout

    with tempfile.TemporaryDirectory(prefix="mcuforge-bench-nas-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "cal.npy", data.x_train[:256])
        graph = export_graph(net, data.in_channels, data.in_resolution)
        cfg = BuildConfig(name="nas", calibration=str(tmp / "cal.npy"), schedule=budget.schedule,
                          sram_budget=budget.sram, flash_budget=budget.flash)
        plan = compile_model(graph, cfg, tmp / "c")
        mem = elf_memory(plan, tmp / "c", tmp / "m4")
        exe = hostrun.build(plan, tmp / "c", tmp / "host")
        xq = to_ir_layout(plan.graph, quantize_values(x_test, plan.graph.tensors[plan.input].quant))
        (y,) = hostrun.run(plan, exe, xq)
    int8 = float((y.reshape(len(xq), -1).argmax(1) == y_test).mean())
    macs = plan.patch.layer_macs if plan.patch else plan.macs
    return {"int8_accuracy": int8, "macs": int(macs), "flops": 2 * int(macs), "sram_bytes": mem["ram_bytes"],
            "flash_bytes": mem["flash_bytes"], "schedule": plan.schedule}


def train_from_scratch(arch, data, epochs: int, seed: int = 0):
    from mcuforge.nas.measure import accuracy, train
    from mcuforge.nas.space import build

    import torch

    torch.manual_seed(seed)
    net = build(arch)
    t = time.monotonic()
    train(net, data.x_train, data.y_train, epochs, 3e-3, seed)
    return net, accuracy(net, data.x_val, data.y_val), time.monotonic() - t


def best_baseline(engine, data, budget, depths, epochs: int, top: int, x_test, y_test, log) -> dict | None:
    """Measure the grid, train the `top` fitting ones with the most MACs, keep
    the best on the held-out part of the training split."""
    from mcuforge.nas.baseline import WIDTHS, ScaledMobileNetV2
    from mcuforge.nas.measure import accuracy
    from mcuforge.nas.space import resolutions_for

    archs = [ScaledMobileNetV2(data.in_channels, data.in_resolution, data.classes, w, r, d)
             for d in depths for w in WIDTHS for r in resolutions_for(data.in_resolution)]
    ctx = {"token": f"baseline-{budget}-{depths}", "budget": budget, "calibration": data.x_train[:32]}
    rows = engine.map("measure", ctx, archs)
    fitting = sorted([(r, a) for r, a in zip(rows, archs) if r["fits"]], key=lambda t: -t[0]["macs"])
    smallest = min((r["flash_bytes"] or 10**9 for r in rows), default=None)
    log(f"  MobileNetV2 depth {depths}: {len(fitting)} of {len(archs)} (width, resolution) fit; "
        f"smallest flash {smallest} B")
    if not fitting:
        return {"fits": False, "measured": len(archs), "smallest_flash_bytes": smallest}
    best = None
    for row, arch in fitting[:top]:
        net, val, secs = train_from_scratch(arch, data, epochs)
        log(f"    width {arch.width} resolution {arch.resolution} depth {arch.depth}: {row['macs']:,} MACs, "
            f"held-out {val:.1%} ({secs:.0f} s)")
        if best is None or val > best[1]:
            best = (arch, val, net)
    arch, val, net = best
    out = {"fits": True, "measured": len(archs), "fitting": len(fitting), "width": arch.width,
           "resolution": arch.resolution, "depth": arch.depth, "val_accuracy": val,
           "test_accuracy": accuracy(net, x_test, y_test)}
    out.update(compiled_accuracy(net, data, x_test, y_test, budget))
    return out


def speedup(candidates, ctx, log) -> list[dict]:
    """Wall time of evaluating the same candidates with 1 and 2 workers
    (the second of two passes, so that start-up is not counted), process
    pool and Ray."""
    from mcuforge.nas.engine import Engine

    out = []
    for use_ray in (False, True):
        times = {}
        for workers in (1, 2):
            with Engine(workers, use_ray) as eng:
                eng.map("candidate", ctx, candidates)  # start every worker: imports, supernet cache
                t = time.monotonic()
                rows = eng.map("candidate", ctx, candidates)
                times[workers] = time.monotonic() - t
        out.append({"engine": "ray" if use_ray else "process pool", "candidates": len(candidates),
                    "seconds_1_worker": round(times[1], 2), "seconds_2_workers": round(times[2], 2),
                    "speedup": round(times[1] / times[2], 2)})
        log(f"  {out[-1]}")
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--space" in argv and argv[argv.index("--space") + 1:][:1] == ["families"]:
        import nas_families  # the family space against hand-drawn baselines (bench/nas_families.py)

        return nas_families.main([a for a in argv if a not in ("--space", "families")])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet-epochs", type=int, default=12)
    ap.add_argument("--finetune-epochs", type=int, default=8)
    ap.add_argument("--space-samples", type=int, default=6)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--baseline-top", type=int, default=2, help="fitting baselines trained per family")
    ap.add_argument("--no-speedup", action="store_true")
    ap.add_argument("-o", "--output", default=str(ROOT / "out" / "bench-nas"))
    args = ap.parse_args(argv)

    import torch

    from mcuforge.tools.digits import digits_split
    from mcuforge.nas.engine import Engine
    from mcuforge.nas.measure import Budget, accuracy
    from mcuforge.nas.run import Options, search, write_result
    from mcuforge.nas.search import Progress, check_data, split

    torch.set_num_threads(1)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    x_train, x_test, y_train, y_test = digits_split()
    x, y, classes = check_data(x_train, y_train, "digits")
    data = split(x, y, classes)
    epochs = args.supernet_epochs + args.finetune_epochs
    results = []
    speed = []
    for sram, flash in BUDGETS:
        budget = Budget(sram, flash, "layer")
        log(f"== budget {sram} B SRAM, {flash} B flash")
        opts = Options(budget=budget, workers=2, space_samples=args.space_samples,
                       supernet_epochs=args.supernet_epochs, population=args.population,
                       generations=args.generations, finetune_epochs=args.finetune_epochs)
        with Engine(2) as engine:
            t = time.monotonic()
            result = search(data, opts, Progress(True), engine)
            search_seconds = time.monotonic() - t
            report = write_result(result, data, opts, Path(args.output) / f"nas_{sram}_{flash}")
            arch = result["arch"]
            searched = {"arch": arch.to_dict(), "val_accuracy": result["accuracy"],
                        "test_accuracy": accuracy(result["model"], x_test, y_test),
                        "search_seconds": round(search_seconds, 1), "engine": result["engine"],
                        "space_table": report["search_space"]["table"]}
            searched.update(compiled_accuracy(result["model"], data, x_test, y_test, budget))
            log(f"  searched: width {arch.width} resolution {arch.resolution}: test {searched['test_accuracy']:.1%} "
                f"(int8 C {searched['int8_accuracy']:.1%}), {searched['sram_bytes']} B SRAM, "
                f"{searched['flash_bytes']} B flash, {search_seconds:.0f} s")
            net, val, _ = train_from_scratch(arch, data, epochs)
            scratch = {"val_accuracy": val, "test_accuracy": accuracy(net, x_test, y_test)}
            scratch.update(compiled_accuracy(net, data, x_test, y_test, budget))
            log(f"  searched architecture from scratch ({epochs} epochs): test {scratch['test_accuracy']:.1%}")
            base = best_baseline(engine, data, budget, (1.0,), epochs, args.baseline_top, x_test, y_test, log)
            deep = best_baseline(engine, data, budget, (0.5, 0.0), epochs, args.baseline_top, x_test, y_test, log)
            if not args.no_speedup and not speed:
                fitting = [r["arch_obj"] for r in result["evolution"].population][:8]
                speed = speedup(fitting, result["evolution"].context, log)
        results.append({"sram_budget": sram, "flash_budget": flash, "searched": searched,
                        "searched_from_scratch": scratch, "mobilenet_v2": base,
                        "mobilenet_v2_depth_scaled": deep, "verdict": verdict(searched, scratch, base)})
        log(f"  verdict: {results[-1]['verdict']}")
    table = markdown(results, speed)
    write_results("nas", {"budgets": results, "speedup": speed, "epochs": epochs}, table, "nas")
    return 0


def verdict(searched: dict, scratch: dict, base: dict | None) -> str:
    if not base or not base.get("fits"):
        return ("no width/resolution-scaled MobileNetV2 fits this budget (smallest: "
                f"{base.get('smallest_flash_bytes') if base else '?'} B flash): target not applicable; "
                "see the depth-scaled reference")
    parts = []
    for label, s in (("NAS pipeline", searched), ("same recipe", scratch)):
        gain = 100 * (s["int8_accuracy"] - base["int8_accuracy"])
        ratio = s["sram_bytes"] / base["sram_bytes"]
        met = gain >= 2 or (gain >= 0 and ratio <= 0.7)
        parts.append(f"{label}: {gain:+.1f} points int8, {ratio:.0%} of its peak SRAM: {'met' if met else 'NOT met'}")
    return "; ".join(parts)


def _cell(r: dict | None) -> str:
    if not r or not r.get("fits", True):
        return "none fits | | | | "
    name = f"w{r['width']} r{r['resolution']}" + (f" d{r['depth']}" if r.get("depth", 1.0) != 1.0 else "")
    return (f"{name}: {100 * r['test_accuracy']:.1f} / {100 * r['int8_accuracy']:.1f} | {r['flops']:,} | "
            f"{r['sram_bytes']:,} | {r['flash_bytes']:,}")


def markdown(results: list[dict], speed: list[dict]) -> str:
    lines = ["| budget (SRAM / flash) | model | test accuracy % (float / int8 C) | FLOPs | peak SRAM (B) | flash (B) | search time |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        b = f"{r['sram_budget'] // 1024} KB / {r['flash_budget'] // 1024} KB"
        s = r["searched"]
        a = s["arch"]
        lines.append(f"| {b} | searched (NAS) | w{a['width']} r{a['resolution']} depths {a['depths']}: "
                     f"{100 * s['test_accuracy']:.1f} / {100 * s['int8_accuracy']:.1f} | {s['flops']:,} | "
                     f"{s['sram_bytes']:,} | {s['flash_bytes']:,} | {s['search_seconds']:.0f} s |")
        sc = dict(r["searched_from_scratch"], width=a["width"], resolution=a["resolution"])
        lines.append(f"| {b} | searched arch, baseline recipe | {_cell(sc)} | |")
        lines.append(f"| {b} | MobileNetV2 (width, resolution) | {_cell(r['mobilenet_v2'])} | |")
        lines.append(f"| {b} | MobileNetV2 (width, resolution, depth) | {_cell(r['mobilenet_v2_depth_scaled'])} | |")
    lines.append("")
    for r in results:
        lines.append(f"* {r['sram_budget'] // 1024} KB / {r['flash_budget'] // 1024} KB: {r['verdict']}")
    for s in speed:
        lines.append(f"* candidate evaluation, {s['engine']}: {s['candidates']} candidates in "
                     f"{s['seconds_1_worker']} s on 1 worker, {s['seconds_2_workers']} s on 2: "
                     f"speed-up {s['speedup']}x")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
