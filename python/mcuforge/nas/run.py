"""`mcuforge nas`: data -> searched, fine-tuned, compiled and ELF-checked
network in DIR (written into a temporary sibling and moved into place only
when everything succeeded).

DIR/arch.json     the architecture (`mcuforge.nas.load(DIR)` rebuilds the net)
DIR/model.pt      its PyTorch state dict
DIR/model.onnx    the network at the data's own resolution (resize included)
DIR/c/            the compiled C (mcuforge compile's output for model.onnx)
DIR/<name>_cortex_m4.elf, DIR/elf_check.json   the Cortex-M4 image and its check
DIR/report.json   accuracy, MACs, peak SRAM, flash, the search-space table, the search
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ir import BudgetError, McuforgeError
from .engine import Engine
from .measure import ELF_OPT, ELF_TARGET, Budget, torch_module, accuracy, export_graph
from .search import (Data, Progress, evolve, finetune, optimize_space, row_public, train_supernet)
from .space import WIDTHS, Arch, Space, build, resolutions_for


@dataclass
class Options:
    budget: Budget
    seed: int = 0
    time_budget: float | None = None  # seconds
    workers: int = 2
    use_ray: bool = False
    widths: tuple[float, ...] = WIDTHS
    resolutions: tuple[int, ...] | None = None
    space_samples: int = 8
    supernet_epochs: int = 30
    population: int = 12
    generations: int = 6
    finetune_epochs: int = 10
    name: str = "nas"


def _deadline(start: float, opts: Options, fraction: float) -> float | None:
    return None if opts.time_budget is None else start + fraction * opts.time_budget


def search(data: Data, opts: Options, progress: Progress | None = None, engine: Engine | None = None) -> dict:
    """Both steps and the fine-tune; returns the in-memory result (no files)."""
    progress = progress or Progress(False)
    start = time.monotonic()
    own = engine is None
    engine = engine or Engine(opts.workers, opts.use_ray)
    try:
        t0 = time.monotonic()
        choice = optimize_space(engine, data, opts.budget, opts.widths, opts.resolutions, opts.space_samples,
                                opts.seed, _deadline(start, opts, 0.2), progress)
        t_space = time.monotonic() - t0
        space = Space(data.in_channels, data.in_resolution, data.classes, choice.width, choice.resolution)
        t0 = time.monotonic()
        net, epochs = train_supernet(space, data, opts.supernet_epochs, opts.seed, _deadline(start, opts, 0.5),
                                     progress)
        t_train = time.monotonic() - t0
        t0 = time.monotonic()
        evo = evolve(engine, net, space, data, opts.budget, opts.population, opts.generations, opts.seed,
                     _deadline(start, opts, 0.8), progress, seeds=choice.fitting())
        t_evolve = time.monotonic() - t0
        engine_name = engine.name
    finally:
        if own:
            engine.close()
    arch = evo.best["arch_obj"]
    t0 = time.monotonic()
    model = finetune(net, arch, data, opts.finetune_epochs, opts.seed, _deadline(start, opts, 0.9))
    t_ft = time.monotonic() - t0
    acc = accuracy(model, data.x_val, data.y_val)
    progress.say(f"winner: width {arch.width}, resolution {arch.resolution}, depths {list(arch.depths)}: "
                 f"held-out {evo.best['accuracy']:.1%} with shared weights, {acc:.1%} after fine-tuning")
    return {"arch": arch, "model": model, "space": choice, "evolution": evo, "accuracy": acc,
            "supernet_epochs": epochs, "engine": engine_name,
            "seconds": {"space": t_space, "supernet": t_train, "evolution": t_evolve, "finetune": t_ft,
                        "search_total": time.monotonic() - start}}


def write_result(result: dict, data: Data, opts: Options, outdir: Path, progress: Progress | None = None) -> dict:
    """Compile the winner, build and check its Cortex-M4 ELF, measure its
    int8 accuracy with the generated C, write DIR atomically."""
    from ..tools import elfcheck, hostrun, qemu
    from ..config import BuildConfig
    from ..frontends.torch import export_legacy
    from ..pipeline import compile_model, staged_output
    from ..quantize import quantize_values, to_ir_layout

    torch = torch_module()
    progress = progress or Progress(False)
    with staged_output(outdir) as (tmp, _):
        arch, model = result["arch"], result["model"].eval()
        (tmp / "arch.json").write_text(json.dumps({"arch": arch.to_dict(), "builder": "mcuforge.nas.space.build"},
                                                  indent=2) + "\n")
        torch.save(model.state_dict(), tmp / "model.pt")
        example = torch.zeros(1, data.in_channels, data.in_resolution, data.in_resolution)
        (tmp / "model.onnx").write_bytes(export_legacy(model, (example,), 1))
        calib = tmp / "calibration.npy"
        np.save(calib, data.x_train[:256])
        budget = opts.budget
        cfg = BuildConfig(name=opts.name, calibration=str(calib), schedule=budget.schedule,
                          sram_budget=budget.sram, flash_budget=budget.flash)
        progress.say("compiling the winner")
        plan = compile_model(tmp / "model.onnx", cfg, tmp / "c")
        calib.unlink()
        elf = qemu.build(plan, tmp / "c", tmp / "build", target=ELF_TARGET, opt=ELF_OPT)
        final_elf = tmp / f"{opts.name}_cortex_m4.elf"
        shutil.copyfile(elf, final_elf)
        mem = elfcheck.read_elf(final_elf)
        check = elfcheck.summarize(mem, opts.name)
        problems = elfcheck.check(check, mem, budget.sram, budget.flash)
        check["elf"] = final_elf.name
        (tmp / "elf_check.json").write_text(json.dumps(check, indent=2) + "\n")
        if problems:
            raise BudgetError("the searched network's Cortex-M4 image is over budget: " + "; ".join(problems))
        progress.say(f"check-elf on the Cortex-M4 image: RAM {check['model']['ram_bytes']} B, flash "
                     f"{check['model']['flash_bytes']} B: within budget")
        exe = hostrun.build(plan, tmp / "c", tmp / "host")
        xq = to_ir_layout(plan.graph, quantize_values(data.x_val, plan.graph.tensors[plan.input].quant))
        (y_int8,) = hostrun.run(plan, exe, xq)
        int8_acc = float((y_int8.reshape(len(xq), -1).argmax(1) == data.y_val).mean())
        shutil.rmtree(tmp / "build")
        shutil.rmtree(tmp / "host")
        report = build_report(result, data, opts, plan, check, int8_acc)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def build_report(result: dict, data: Data, opts: Options, plan, check: dict, int8_acc: float) -> dict:
    arch, evo, choice = result["arch"], result["evolution"], result["space"]
    m = check["model"]
    return {
        "arch": arch.to_dict(),
        "budget": {"sram_bytes": opts.budget.sram, "flash_bytes": opts.budget.flash, "schedule": opts.budget.schedule},
        "data": {"train": len(data.y_train), "held_out": len(data.y_val), "classes": data.classes,
                 "input_shape": [data.in_channels, data.in_resolution, data.in_resolution]},
        "accuracy": {"shared_weights": evo.best["accuracy"], "float": result["accuracy"], "int8_c": int8_acc},
        "macs": int(plan.patch.layer_macs if plan.patch else plan.macs),
        "flops": 2 * int(plan.patch.layer_macs if plan.patch else plan.macs),
        "run_macs": int(plan.macs),
        "schedule": plan.schedule,
        "arena_bytes": plan.arena_size,
        "sram_bytes": m["ram_bytes"],
        "flash_bytes": m["flash_bytes"],
        "weights_bytes": m["weights_bytes"],
        "code_bytes": m["code_bytes"],
        "elf_check": {"target": ELF_TARGET, "opt": ELF_OPT, "fits": check["fits"]},
        "search_space": {"chosen": {"width": choice.width, "resolution": choice.resolution}, "table": choice.table},
        "evolution": {"history": evo.history, "evaluated": evo.evaluated, "fitting": evo.fitting,
                      "best": row_public(evo.best)},
        "supernet_epochs": result["supernet_epochs"],
        "engine": result["engine"],
        "seconds": {k: round(v, 2) for k, v in result["seconds"].items()},
        "seed": opts.seed,
        "time_budget_seconds": opts.time_budget,
    }


def format_space_table(table: list[dict]) -> str:
    lines = ["| width | resolution | fitting / sampled | mean MACs of fitting | max MACs | min peak SRAM (B) |",
             "|---|---|---|---|---|---|"]
    for t in table:
        mark = " **chosen**" if t["chosen"] else ""
        lines.append(f"| {t['width']} | {t['resolution']}{mark} | {t['fitting']} / {t['sampled']} | "
                     f"{t['mean_macs_fitting']:,.0f} | {t['max_macs_fitting']:,} | {t['min_sram_bytes']} |")
    return "\n".join(lines)


def load(directory: Path):
    """The searched network of a `mcuforge nas` output directory, as a
    PyTorch module with its trained weights (eval mode)."""
    torch = torch_module()
    directory = Path(directory)
    try:
        meta = json.loads((directory / "arch.json").read_text())
    except (OSError, ValueError) as err:
        raise McuforgeError(f"{directory}: no readable arch.json ({err.__class__.__name__}); "
                            "is this an output directory of 'mcuforge nas'?") from None
    if "design" in meta:  # a search over the family space (families.py)
        from . import families

        net = families.build(families.Design.from_dict(meta["design"]))
    else:
        net = build(Arch.from_dict(meta["arch"]))
    net.load_state_dict(torch.load(directory / "model.pt", weights_only=True))
    return net.eval()


def parse_duration(text: str) -> float:
    """'10m' -> 600, '90s' -> 90, '1h' -> 3600, '45' -> 45 (seconds)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise McuforgeError(f"--time-budget: '{text}' is not a duration (examples: 90s, 10m, 1h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _use_families(args) -> bool:
    space = getattr(args, "space", "mobilenet") or "mobilenet"
    if space != "auto":
        return space == "families"
    try:  # auto: the family space unless the data are square images
        with np.load(Path(args.data), allow_pickle=False) as f:
            shape = f["x"].shape if "x" in f.files else None
    except Exception:
        return False  # load_data names the problem
    return shape is not None and not (len(shape) == 4 and shape[2] == shape[3])


def main_nas(args) -> int:
    from ..config import parse_size
    from .search import load_data

    if not args.sram_budget or not args.flash_budget:
        raise McuforgeError("nas: give both --sram-budget and --flash-budget (e.g. --sram-budget 8K "
                            "--flash-budget 32K)")
    budget = Budget(parse_size(args.sram_budget, "--sram-budget"), parse_size(args.flash_budget, "--flash-budget"),
                    args.schedule or "layer")
    time_budget = parse_duration(args.time_budget) if args.time_budget else None
    if args.workers < 1:
        raise McuforgeError("--workers: give at least 1")
    from ..config import BuildConfig

    BuildConfig(name=args.name).validate()  # a bad --name fails now, not after the search
    if _use_families(args):
        from .familyrun import main_families

        return main_families(args, budget, time_budget)
    data = load_data(Path(args.data), seed=args.seed)
    from .engine import ray_requested

    opts = Options(budget=budget, seed=args.seed, time_budget=time_budget, workers=args.workers,
                   use_ray=ray_requested(args.ray), name=args.name or "nas")
    for field_name in ("space_samples", "supernet_epochs", "population", "generations", "finetune_epochs"):
        value = getattr(args, field_name, None)
        if value is not None:
            if value < (0 if field_name == "finetune_epochs" else 1):
                raise McuforgeError(f"--{field_name.replace('_', '-')}: must be positive")
            setattr(opts, field_name, value)
    progress = Progress(not args.quiet)
    progress.say(f"data: {len(data.y_train)} training, {len(data.y_val)} held-out {data.in_channels}x"
                 f"{data.in_resolution}x{data.in_resolution} images, {data.classes} classes; budget "
                 f"{budget.sram} B SRAM, {budget.flash} B flash, schedule {budget.schedule}")
    result = search(data, opts, progress)
    report = write_result(result, data, opts, Path(args.output), progress)
    if not args.quiet:
        print(format_space_table(report["search_space"]["table"]))
    a = report["accuracy"]
    print(f"wrote {args.output}: width {report['arch']['width']}, resolution {report['arch']['resolution']}, "
          f"held-out accuracy {a['float']:.2%} (int8 C {a['int8_c']:.2%}), {report['macs']:,} MACs, "
          f"peak SRAM {report['sram_bytes']} B, flash {report['flash_bytes']} B (Cortex-M4 ELF checked)")
    return 0
