"""TinyNAS over the families of `families`, for any input shape.

1. Space optimization (MCUNet's first step, extended to families and
   layouts): for every (family, width, scale, layout), sample networks (the
   family's hand-drawn members among them), measure each one's exact peak
   SRAM and flash (plan + linked Cortex-M4 ELF, as `measure` does), and pick
   the quadruple by a short training of its best-placed network (criterion
   "train", the default) or by the mean MACs of its fitting networks
   (MCUNet's rule). The table of what was compared is returned for
   report.json.
2. Evolution inside the chosen space, from the hand-drawn members that fit:
   every candidate is measured for real; one that fits is trained from
   scratch for a few epochs (the proxy) and scored on the held-out split.
   There is no weight-sharing supernet here: for data sets of this size a
   short training per candidate is affordable and is not biased by shared
   weights. The best few are trained again for longer and ranked by that
   (`rescore_best`).
3. The winner is trained for the full recipe, compiled, its Cortex-M4 ELF
   checked against the budgets, and its int8 accuracy measured by running the
   generated C on the host (`finish`).

Data is (N, C, H, W); 1-D data (N, C, L) is taken as (N, C, L, 1).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..ir import McuforgeError
from .families import FAMILIES, WIDTHS, Design, FamilySpace, build, export, layouts_for, scales_for
from .measure import ELF_OPT, ELF_TARGET, Budget, accuracy, elf_fit, plan_for, torch_module, train, workdir


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]


def as_images(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) as is; (N, C, L) -> (N, C, L, 1)."""
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise McuforgeError(f"data has shape {x.shape}; expected (N, C, H, W) or 1-D (N, C, L)")
    return x


# ---- measurement ---------------------------------------------------------------------------

def measure_design(design: Design, budget: Budget, calibration: np.ndarray, latency=None,
                   latency_budget: int | None = None) -> dict:
    """Exact peak SRAM and flash of `design` under `budget`: the plan, and
    when it fits, the linked Cortex-M4 ELF (weights + code). With a latency
    cost table (`latency.CostTable`), the predicted Cortex-M4 instructions
    too, checked against `latency_budget`."""
    torch = torch_module()
    torch.manual_seed(0)
    net = build(design)
    with torch.no_grad():  # an untrained classifier's bias can overflow int32 after quantization
        net.classifier.bias.zero_()
    row = {"design": design.key(), "family": design.family, "width": design.width, "scale": design.scale,
           "layout": design.layout}
    return measure_module(net, design.input_shape, budget, calibration, latency, latency_budget, row)


def measure_module(net, input_shape, budget: Budget, calibration: np.ndarray, latency=None,
                   latency_budget: int | None = None, row: dict | None = None) -> dict:
    """`measure_design` for any PyTorch module taking (1, C, H, W) (a baseline that is not a Design)."""
    cal = workdir() / f"calibration-{'x'.join(map(str, input_shape))}.npy"
    if not cal.exists():
        np.save(cal, calibration.astype(np.float32))
    plan, peak, reason = plan_for(export(net, input_shape), budget, str(cal))
    row = {**(row or {}), "fits": False, "sram_bytes": peak, "flash_bytes": None, "reason": reason}
    if plan is None:
        return row
    row.update(macs=int(plan.patch.layer_macs if plan.patch is not None else plan.macs),
               plan_weight_bytes=int(plan.weight_bytes))
    if latency is not None:
        row["instructions_predicted"] = latency.predict(plan)
    if reason or plan.sram_bytes() > budget.sram:
        row["reason"] = reason or "over the SRAM budget"
        return row
    if latency_budget is not None and row["instructions_predicted"] > latency_budget:
        row["reason"] = "over the latency budget"
        return row
    return elf_fit(plan, budget, row)


# ---- scoring ---------------------------------------------------------------------------------

def train_design(design: Design, split: Split, epochs: int, seed: int, lr: float = 3e-3, deadline=None):
    torch = torch_module()
    torch.manual_seed(seed)
    net = build(design)
    train(net, split.x_train, split.y_train, epochs, lr, seed, deadline)
    return net


def proxy_score(design: Design, split: Split, epochs: int, seed: int, folds: int = 1) -> tuple[float, int]:
    """(accuracy, samples scored) of `design` after `epochs` of training from
    scratch: on the held-out split, or with `folds` > 1 by k-fold cross-
    validation over training + held-out together (every sample scored once,
    by a network that did not train on it)."""
    if folds <= 1:
        net = train_design(design, split, epochs, seed)
        return accuracy(net, split.x_val, split.y_val), len(split.y_val)
    x = np.concatenate([split.x_train, split.x_val])
    y = np.concatenate([split.y_train, split.y_val])
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        net = train_design(design, Split(x[rest], y[rest], x[part], y[part], split.classes), epochs, seed)
        correct += int(round(accuracy(net, x[part], y[part]) * len(part)))
    return correct / len(y), len(y)


def tie_tolerance(best: float, scored: int) -> float:
    """How far below the best proxy accuracy a candidate still ties with it:
    half the binomial standard error of the best on the scored samples, and
    at least one sample."""
    return max(1.0 / scored, 0.5 * float(np.sqrt(max(best * (1 - best), 0.0) / scored)))


def prefer_small(rows: list[dict]) -> list[dict]:
    """Fitting rows with an accuracy, best first: those tied with the most
    accurate (`tie_tolerance`) by SRAM, then flash, then the rest by accuracy."""
    scored = [r for r in rows if r.get("fits") and r.get("accuracy") is not None]
    if not scored:
        return []
    top = max(r["accuracy"] for r in scored)
    tol = tie_tolerance(top, max(r.get("scored", 1) for r in scored))
    tied = sorted((r for r in scored if r["accuracy"] >= top - tol - 1e-12),
                  key=lambda r: (r["sram_bytes"], r["flash_bytes"], -r["accuracy"], r["design"]))
    rest = sorted((r for r in scored if r["accuracy"] < top - tol - 1e-12),
                  key=lambda r: (-r["accuracy"], r["sram_bytes"], r["flash_bytes"], r["design"]))
    return tied + rest


# ---- step 1 ----------------------------------------------------------------------------------

@dataclass
class SpaceChoice:
    family: str
    width: float
    scale: float
    table: list[dict]
    rows: list[dict]
    criterion: str = "macs"
    layout: str = "image"

    def fitting(self) -> list[Design]:
        mine = _key(vars(self))
        return [Design.from_dict(json.loads(r["design"])) for r in self.rows if r["fits"] and _key(r) == mine]


def _key(r: dict) -> tuple:
    """The (family, width, scale, layout) of a space-table entry or a measured row."""
    return (r["family"], r["width"], r["scale"], r.get("layout", "image"))


def _spread(items: list, n: int) -> list:
    """n items evenly spread over `items` (its first and last included)."""
    if len(items) <= n:
        return list(items)
    return [items[int(round(i))] for i in np.linspace(0, len(items) - 1, n)]


def choose_space(split: Split, budget: Budget, families=tuple(FAMILIES), widths=WIDTHS, scales=None,
                 samples: int = 4, seed: int = 0, min_fit_fraction: float = 0.2, say=None, latency=None,
                 latency_budget: int | None = None, criterion: str = "macs", proxy_epochs: int = 5,
                 folds: int = 1, per_family: int = 3, layouts=None) -> SpaceChoice:
    """MCUNet's space optimization over (family, width, scale, layout)
    (module doc; `layouts` defaults to every layout the input allows,
    `families.layouts_for`).

    criterion "macs": the triple whose fitting samples have the most MACs on
    average (MCUNet's rule). criterion "train": per family and layout,
    `per_family` triples spread over its range of MACs are scored by a short
    training (`proxy_score`) of their fitting hand-drawn member
    (`FamilySpace.anchors`) with the most MACs, else of their fitting sample
    with the most MACs; the best proxy accuracy wins, and among ties
    (`tie_tolerance`) the one with the smallest SRAM."""
    if criterion not in ("macs", "train"):
        raise McuforgeError(f"space criterion '{criterion}': expected macs or train")
    shape = split.input_shape
    layouts = tuple(layouts or layouts_for(shape))
    calibration = split.x_train[:32]
    rows, table = [], []
    for family in families:
        for layout in layouts:
            allowed = scales_for(shape, layout)
            for width in widths:
                for scale in [s for s in (scales or allowed) if s in allowed]:
                    space = FamilySpace(family, shape, split.classes, width, scale, layout)
                    rng = random.Random(f"{seed}-{family}-{width}-{scale}" + ("" if layout == "image" else layout))
                    # the hand-drawn members represent the triple in a short training (criterion "train")
                    fixed = [space.smallest()][:samples]
                    if criterion == "train":
                        fixed += [d for d in space.anchors() if d not in fixed]
                    designs = fixed + [space.sample(rng) for _ in range(samples - len(fixed))]
                    mine = [measure_design(d, budget, calibration, latency, latency_budget) for d in designs]
                    rows += mine
                    fit = [r for r in mine if r["fits"]]
                    macs = [r["macs"] for r in fit]
                    peaks = [r["sram_bytes"] for r in mine if r["sram_bytes"] is not None]
                    table.append({"family": family, "width": width, "scale": scale, "layout": layout,
                                  "sampled": len(mine), "fitting": len(fit),
                                  "fit_fraction": round(len(fit) / len(mine), 3),
                                  "mean_macs_fitting": float(np.mean(macs)) if macs else 0.0,
                                  "max_macs_fitting": int(max(macs)) if macs else 0,
                                  "min_sram_bytes": int(min(peaks)) if peaks else None, "chosen": False})
                    if say:
                        t = table[-1]
                        say(f"space {family} {layout} width {width} scale {scale}: {t['fitting']}/{t['sampled']} "
                            f"fit, mean {t['mean_macs_fitting']:,.0f} MACs")
    candidates = [t for t in table if t["fitting"] and t["fit_fraction"] >= min_fit_fraction] or \
        [t for t in table if t["fitting"]]
    if not candidates:
        low = min((r for r in rows if r["sram_bytes"] is not None), key=lambda r: r["sram_bytes"], default=None)
        from ..ir import BudgetError

        raise BudgetError(f"no network of the search space fits {budget.sram} bytes of SRAM and {budget.flash} "
                          f"bytes of flash" + (f"; the smallest peak SRAM found is {low['sram_bytes']} bytes "
                                               f"({low['family']}, width {low['width']}): raise the budgets"
                                               if low else ""))
    if criterion == "macs":
        best = max(candidates, key=lambda t: (t["mean_macs_fitting"], t["fit_fraction"], -t["width"], -t["scale"]))
    else:
        trained = []
        for family, layout in [(f, lo) for f in families for lo in layouts]:
            mine = sorted((t for t in candidates if (t["family"], t["layout"]) == (family, layout)),
                          key=lambda t: (t["mean_macs_fitting"], -t["width"], -t["scale"]))
            for t in _spread(mine, per_family):
                fit = [r for r in rows if r["fits"] and _key(r) == _key(t)]
                anchors = {d.key() for d in FamilySpace(family, shape, split.classes, t["width"], t["scale"],
                                                        layout).anchors()}
                r = max(fit, key=lambda r: (r["design"] in anchors, r["macs"], r["design"]))
                acc, n = proxy_score(Design.from_dict(json.loads(r["design"])), split, proxy_epochs, seed, folds)
                t.update(proxy_accuracy=acc, proxy_scored=n, proxy_design=r["design"], proxy_macs=r["macs"],
                         proxy_sram_bytes=r["sram_bytes"])
                trained.append({"design": r["design"], "fits": True, "accuracy": acc, "scored": n,
                                "sram_bytes": r["sram_bytes"], "flash_bytes": r["flash_bytes"], "table": t})
                if say:
                    say(f"space {family} {layout} width {t['width']} scale {t['scale']}: proxy {acc:.2%} "
                        f"({r['macs']:,} MACs, {r['sram_bytes']} B SRAM)")
        best = prefer_small(trained)[0]["table"]
    best["chosen"] = True
    return SpaceChoice(best["family"], best["width"], best["scale"], table, rows, criterion, best["layout"])


# ---- step 2 ----------------------------------------------------------------------------------

@dataclass
class Result:
    design: Design
    model: object
    accuracy: float  # held-out, float, after the full training
    choice: SpaceChoice | None
    evaluated: list[dict] = field(default_factory=list)
    latency: object = None  # the cost table when a latency budget was given
    seconds: dict = field(default_factory=dict)


def evolve(space: FamilySpace, split: Split, budget: Budget, candidates: int, proxy_epochs: int, seed: int,
           seeds: list[Design] = (), deadline=None, say=None, latency=None,
           latency_budget: int | None = None, folds: int = 1, known: dict | None = None) -> list[dict]:
    """Evolution until `candidates` fitting networks were proxy-trained
    (every proposal is measured; those over a budget cost a compile, not a
    training, and do not count, up to 6 x `candidates` proposals); returns
    every measured row, the fitting ones first, best first (`prefer_small`:
    the smallest SRAM among those tied with the most accurate). `known`:
    design key -> (accuracy, scored) already measured with the same proxy."""
    rng = random.Random(seed)
    known = known or {}
    calibration = split.x_train[:32]
    seen: dict[str, dict] = {}

    def evaluate(d: Design) -> None:
        if d.key() in seen:
            return
        row = measure_design(d, budget, calibration, latency, latency_budget)
        if row["fits"]:
            row["accuracy"], row["scored"] = known.get(d.key()) or proxy_score(d, split, proxy_epochs, seed, folds)
        row["design_obj"] = d
        seen[d.key()] = row
        if say:
            say(f"proposal {len(seen)} ({sum(r['fits'] for r in seen.values())}/{candidates} trained): "
                + (f"{row['accuracy']:.2%}, {row['macs']:,} MACs, {row['sram_bytes']} B SRAM, "
                   f"{row['flash_bytes']} B flash" if row["fits"] else row["reason"]))

    def ranked():
        return prefer_small(list(seen.values()))

    pool = list(seeds)[:max(1, candidates // 3)]
    attempts = 0
    while sum(r["fits"] for r in seen.values()) < candidates and attempts < 6 * candidates:
        attempts += 1
        if deadline is not None and time.monotonic() > deadline and ranked():
            break
        if pool:
            evaluate(pool.pop(0))
            continue
        top = ranked()[:4]
        if top and rng.random() < 0.7:
            evaluate(space.mutate(rng.choice(top)["design_obj"], rng))
        else:
            evaluate(space.sample(rng))
    return ranked() + [r for r in seen.values() if not r["fits"]]


def rescore_best(rows: list[dict], split: Split, count: int, epochs: int, seed: int, folds: int = 1,
                 say=None) -> dict:
    """The best of the first `count` fitting rows (ranked by the proxy) after
    `epochs` of training each (`proxy_score`; the rows gain
    ``rescored_accuracy``): a short proxy favours networks that learn fast,
    the longer one ranks the finalists the way the full training will. The
    choice among them is `prefer_small`'s on the longer score."""
    finalists = [r for r in rows if r["fits"]][:max(1, count)]
    if len(finalists) == 1:
        return finalists[0]
    for r in finalists:
        r["rescored_accuracy"], r["rescored"] = proxy_score(r["design_obj"], split, epochs, seed, folds)
        if say:
            say(f"rescored with {epochs} epochs: {r['rescored_accuracy']:.2%} (proxy {r['accuracy']:.2%}), "
                f"{r['macs']:,} MACs, {r['sram_bytes']} B SRAM")
    ranked = prefer_small([{**r, "accuracy": r["rescored_accuracy"], "scored": r["rescored"]} for r in finalists])
    return next(r for r in finalists if r["design"] == ranked[0]["design"])


def search(split: Split, budget: Budget, seed: int = 0, families=tuple(FAMILIES), widths=WIDTHS, scales=None,
           space_samples: int = 4, candidates: int = 12, proxy_epochs: int = 5, final_epochs: int = 40,
           time_budget: float | None = None, say=None, latency_budget: int | None = None,
           space_criterion: str = "train", folds: int = 1, space_per_family: int = 3, rescore: int = 3,
           rescore_epochs: int | None = None, layouts=None) -> Result:
    """The three steps (module doc); with `latency_budget` (Cortex-M4
    instructions) a cost table is measured under QEMU first and every
    candidate's predicted instructions must be within it. `folds` > 1 scores
    every proxy by k-fold cross-validation over training + held-out. The
    evolution's `rescore` best are trained again for `rescore_epochs`
    (default twice the proxy's) and the winner is chosen among them by that
    longer training (`rescore_best`)."""
    start = time.monotonic()
    latency = None
    if latency_budget is not None:
        from .latency import measure_table

        latency = measure_table(split.input_shape, split.classes, split.x_train[:32], say=say)
    t0 = time.monotonic()
    choice = choose_space(split, budget, families, widths, scales, space_samples, seed, say=say, latency=latency,
                          latency_budget=latency_budget, criterion=space_criterion, proxy_epochs=proxy_epochs,
                          folds=folds, per_family=space_per_family, layouts=layouts)
    t_space = time.monotonic() - t0
    if say:
        say(f"chose {choice.family}, width {choice.width}, scale {choice.scale}, layout {choice.layout}")
    space = FamilySpace(choice.family, split.input_shape, split.classes, choice.width, choice.scale, choice.layout)
    t0 = time.monotonic()
    # the evolution stops at 70% of the time budget, and runs for at least 30% of it after the space step
    deadline = None if time_budget is None else max(start + 0.7 * time_budget, time.monotonic() + 0.3 * time_budget)
    anchors = space.anchors()  # the hand-drawn members that fit go before the space step's samples
    seeds = sorted(choice.fitting(), key=lambda d: d not in anchors)
    known = {t["proxy_design"]: (t["proxy_accuracy"], t["proxy_scored"]) for t in choice.table
             if t.get("proxy_design")}
    proxy = [t["proxy_design"] for t in choice.table if t["chosen"] and t.get("proxy_design")]
    if proxy:  # the network the space step trained goes first (its score is reused)
        first = Design.from_dict(json.loads(proxy[0]))
        seeds = [first] + [d for d in seeds if d != first]
    rows = evolve(space, split, budget, candidates, proxy_epochs, seed, seeds, deadline, say, latency,
                  latency_budget, folds, known)
    t_evolve = time.monotonic() - t0
    if not rows[0]["fits"]:
        raise McuforgeError("the evolution found no fitting network (the space step did): raise --candidates")
    t0 = time.monotonic()
    best = rescore_best(rows, split, rescore, rescore_epochs or 2 * proxy_epochs, seed, folds, say)
    t_rescore = time.monotonic() - t0
    t0 = time.monotonic()
    net = train_design(best["design_obj"], split, final_epochs, seed)
    acc = accuracy(net, split.x_val, split.y_val)
    return Result(best["design_obj"], net, acc, choice, [{k: v for k, v in r.items() if k != "design_obj"}
                                                         for r in rows], latency,
                  {"space": t_space, "evolution": t_evolve, "rescore": t_rescore,
                   "final_training": time.monotonic() - t0,
                   "total": time.monotonic() - start})


# ---- step 3 ----------------------------------------------------------------------------------

def finish(net, input_shape, split: Split, budget: Budget, outdir: Path, name: str = "nas", latency=None,
           cycles: bool = False) -> dict:
    """Compile `net`, link and check its Cortex-M4 ELF against the budgets,
    run the generated C on the held-out split: int8 accuracy, MACs, arena,
    RAM and flash from the ELF; with `cycles`, the Cortex-M4 cycles and
    instructions of one inference (`tools.cycles`, the same -Os build)."""
    from ..tools import elfcheck, hostrun, qemu
    from ..pipeline import compile_model
    from ..quantize import quantize_values, to_ir_layout

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    calib = outdir / "calibration.npy"
    np.save(calib, split.x_train[:256])
    graph = export(net, input_shape, name)
    cfg = BuildConfig(name=name, calibration=str(calib), schedule=budget.schedule, sram_budget=budget.sram,
                      flash_budget=budget.flash)
    plan = compile_model(graph, cfg, outdir / "c")
    elf = qemu.build(plan, outdir / "c", outdir / "build", target=ELF_TARGET, opt=ELF_OPT)
    mem = elfcheck.read_elf(elf)
    check = elfcheck.summarize(mem, name)
    problems = elfcheck.check(check, mem, budget.sram, budget.flash)
    exe = hostrun.build(plan, outdir / "c", outdir / "host")
    xq = to_ir_layout(plan.graph, quantize_values(split.x_val, plan.graph.tensors[plan.input].quant))
    (y,) = hostrun.run(plan, exe, xq)
    int8 = float((y.reshape(len(xq), -1).argmax(1) == split.y_val).mean())
    m = check["model"]
    timing = {}
    if latency is not None:  # the prediction against the ELF run once under QEMU
        _, stats = qemu.run(plan, elf, xq[:1], ELF_TARGET)
        timing = {"instructions": int(stats.instructions[0]), "instructions_predicted": latency.predict(plan)}
    if cycles:
        from ..tools import cycles as cycle_model

        run = cycle_model.run(plan, outdir / "c", xq[:1], ELF_TARGET, opt=ELF_OPT, workdir=outdir / "cycles")
        timing.update(cycles_m4=int(round(run.total.cycles)), instructions_m4=int(run.total.instructions))
    return {**timing, "int8_accuracy": int8, "macs": int(plan.macs), "arena_bytes": int(plan.arena_size),
            "sram_bytes": m["ram_bytes"], "flash_bytes": m["flash_bytes"], "code_bytes": m["code_bytes"],
            "weights_bytes": m["weights_bytes"], "fits": not problems, "problems": problems,
            "elf": str(elf)}
