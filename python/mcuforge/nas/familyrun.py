"""`mcuforge nas --space families`: the family space (`families`) searched
by `designsearch`, for images of any shape and 1-D signals.

DIR/arch.json     the design (`mcuforge.nas.families.Design.from_dict`)
DIR/model.pt      its PyTorch state dict
DIR/model.onnx    the network (resize included), input (1, C, H, W); 1-D data as (1, C, L, 1)
DIR/c/, DIR/<name>_cortex_m4.elf, DIR/elf_check.json   the compiled C, its Cortex-M4 image and check
DIR/report.json   int8 accuracy of the C, MACs, arena, RAM and flash (ELF), the space step's
                  table (family x width x scale), every evaluated candidate, times
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..ir import BudgetError, McuforgeError
from .designsearch import Split, as_images, finish, search
from .families import layouts_for, scales_for
from .measure import Budget, torch_module


def load_split(path: Path, seed: int = 0) -> Split:
    """x (N, C, H, W) or (N, C, L) and y; x_val / y_val when the file has
    them (e.g. the keyword set's unseen speakers), else a stratified fifth."""
    from .search import check_data, read_npz, split

    path = Path(path)
    arrays = read_npz(path, "(N, C, H, W) or (N, C, L)", ("x_val", "y_val"))

    def checked(x, y, where):
        x = as_images(x) if np.asarray(x).ndim in (3, 4) else np.asarray(x)
        if x.ndim != 4:
            raise McuforgeError(f"{where}: x has shape {x.shape}; expected (N, C, H, W) or 1-D (N, C, L)")
        # check_data wants square images; the checks it makes do not depend on the shape
        flat = x.reshape(len(x), -1, 1, 1)
        _, y, classes = check_data(flat, y, where)
        return x.astype(np.float32), y, classes

    x, y, classes = checked(arrays["x"], arrays["y"], str(path))
    if "x_val" in arrays and "y_val" in arrays:
        xv, yv, cv = checked(arrays["x_val"], arrays["y_val"], f"{path} (x_val)")
        if xv.shape[1:] != x.shape[1:]:
            raise McuforgeError(f"{path}: x_val has samples of shape {xv.shape[1:]}, x of {x.shape[1:]}")
        return Split(x, y, xv, yv, max(classes, cv))
    s = split(x, y, classes, seed=seed)
    return Split(s.x_train, s.y_train, s.x_val, s.y_val, classes)


def main_families(args, budget: Budget, time_budget: float | None) -> int:
    from ..frontends.torch import export_legacy
    from ..pipeline import staged_output
    from .search import Progress

    data = load_split(Path(args.data), seed=args.seed)
    progress = Progress(not args.quiet)
    c, h, w = data.input_shape
    progress.say(f"data: {len(data.y_train)} training, {len(data.y_val)} held-out samples of shape "
                 f"{c}x{h}x{w}{' (1-D)' if w == 1 else ''}, {data.classes} classes; budget {budget.sram} B SRAM, "
                 f"{budget.flash} B flash")
    opts = {k: getattr(args, k) for k in ("space_samples", "candidates", "proxy_epochs", "final_epochs", "folds")
            if getattr(args, k, None) is not None}
    for k, v in opts.items():
        if v < 1:
            raise McuforgeError(f"--{k.replace('_', '-')}: must be positive")
    for flag in ("widths", "scales"):
        text = getattr(args, flag, None)
        if text:
            try:
                values = tuple(float(v) for v in str(text).split(","))
            except ValueError:
                raise McuforgeError(f"--{flag}: '{text}' is not a comma-separated list of numbers") from None
            allowed = scales_for(data.input_shape) if flag == "scales" else None
            if any(v <= 0 for v in values) or (allowed is not None and any(v not in allowed for v in values)):
                raise McuforgeError(f"--{flag}: {text} has a value out of range"
                                    + (f" (for this data: {', '.join(map(str, allowed))})" if allowed else ""))
            opts[flag] = values
    text = getattr(args, "layouts", None)
    if text:
        layouts = tuple(v.strip() for v in str(text).split(","))
        allowed = layouts_for(data.input_shape)
        if not layouts or any(v not in allowed for v in layouts):
            raise McuforgeError(f"--layouts: '{text}': for this data choose from {', '.join(allowed)}"
                                + ("" if "columns" in allowed else " (columns is for 2-D inputs)"))
        opts["layouts"] = layouts
    if getattr(args, "space_criterion", None):
        opts["space_criterion"] = args.space_criterion
    latency_budget = None
    if getattr(args, "latency_budget", None):
        latency_budget = parse_count(args.latency_budget, "--latency-budget")
    result = search(data, budget, seed=args.seed, time_budget=time_budget, say=progress.say,
                    latency_budget=latency_budget,
                    **{"space_samples": 3, "candidates": 12, "proxy_epochs": 5, "final_epochs": 40, **opts})
    name = args.name or "nas"
    torch = torch_module()
    with staged_output(Path(args.output)) as (tmp, _):
        (tmp / "arch.json").write_text(json.dumps({"design": result.design.to_dict(),
                                                   "builder": "mcuforge.nas.families.build"}, indent=2) + "\n")
        torch.save(result.model.state_dict(), tmp / "model.pt")
        (tmp / "model.onnx").write_bytes(export_legacy(result.model.eval(), (torch.zeros(1, c, h, w),), 1))
        t0 = time.monotonic()
        out = finish(result.model, data.input_shape, data, budget, tmp / "work", name, result.latency)
        elf = tmp / f"{name}_cortex_m4.elf"
        shutil.copyfile(out.pop("elf"), elf)
        shutil.move(str(tmp / "work" / "c"), str(tmp / "c"))
        shutil.rmtree(tmp / "work")
        (tmp / "elf_check.json").write_text(json.dumps({"elf": elf.name, "fits": out["fits"],
                                                        "problems": out["problems"]}, indent=2) + "\n")
        if not out["fits"]:
            raise BudgetError("the searched network's Cortex-M4 image is over budget: " + "; ".join(out["problems"]))
        report = {"design": result.design.to_dict(),
                  "budget": {"sram_bytes": budget.sram, "flash_bytes": budget.flash, "schedule": budget.schedule},
                  "data": {"train": len(data.y_train), "held_out": len(data.y_val), "classes": data.classes,
                           "input_shape": list(data.input_shape)},
                  "accuracy": {"float": result.accuracy, "int8_c": out["int8_accuracy"]},
                  **{k: out[k] for k in ("macs", "arena_bytes", "sram_bytes", "flash_bytes", "code_bytes",
                                          "weights_bytes")},
                  "search_space": {"chosen": {"family": result.choice.family, "width": result.choice.width,
                                              "scale": result.choice.scale, "layout": result.choice.layout},
                                   "criterion": result.choice.criterion,
                                   "table": result.choice.table},
                  "candidates": result.evaluated,
                  **({"latency": {"budget_instructions": latency_budget, "table": result.latency.to_dict(),
                                  "predicted_instructions": out["instructions_predicted"],
                                  "measured_instructions": out["instructions"],
                                  "prediction_error": round(out["instructions_predicted"] / out["instructions"] - 1, 4)}}
                     if result.latency is not None else {}),
                  "seconds": {**{k: round(v, 2) for k, v in result.seconds.items()},
                              "compile_and_check": round(time.monotonic() - t0, 2)},
                  "seed": args.seed}
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if not args.quiet:
        print(format_table(result.choice.table))
    print(f"wrote {args.output}: {result.design.family}, width {result.design.width}, scale {result.design.scale}, "
          f"layout {result.design.layout}, "
          f"{len(result.design.stages)} stage(s); held-out accuracy {result.accuracy:.2%} (int8 C "
          f"{out['int8_accuracy']:.2%}), {out['macs']:,} MACs, RAM {out['sram_bytes']} B, flash "
          f"{out['flash_bytes']} B (Cortex-M4 ELF checked)")
    return 0


def parse_count(text: str, flag: str) -> int:
    """'2M' -> 2,000,000, '500K' -> 500,000, '123456' (decimal, instructions)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise McuforgeError(f"{flag}: '{text}' is not a count of instructions (examples: 2M, 500K, 150000)")
    return int(float(m.group(1)) * {"": 1, "k": 1000, "m": 1000000}[m.group(2).lower()])


def format_table(table: list[dict]) -> str:
    lines = ["| family | layout | width | scale | fitting / sampled | mean MACs of fitting | min peak SRAM (B) | "
             "proxy accuracy |", "|---|---|---|---|---|---|---|---|"]
    for t in table:
        mark = " **chosen**" if t["chosen"] else ""
        proxy = f"{t['proxy_accuracy']:.2%}" if "proxy_accuracy" in t else ""
        lines.append(f"| {t['family']}{mark} | {t.get('layout', 'image')} | {t['width']} | {t['scale']} | "
                     f"{t['fitting']} / {t['sampled']} | "
                     f"{t['mean_macs_fitting']:,.0f} | {t['min_sram_bytes']} | {proxy} |")
    return "\n".join(lines)
