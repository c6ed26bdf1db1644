"""TinyNAS on the real planner, in MCUNet's two steps.

1. Search-space optimization: for every (width, resolution) pair, sample
   subnets, measure each one's exact peak SRAM and flash (`measure`), and
   choose the pair whose fitting subnets have the most MACs on average.
2. A weight-sharing supernet of that space is trained on the user's data
   (sandwich rule: the largest, the smallest and two random subnets per
   batch, the smaller ones also distilled from the largest); an evolutionary
   search over subnets that fit the budgets (every check a real compile) is
   scored by held-out accuracy with the shared weights; the winner is
   fine-tuned briefly, compiled, and its Cortex-M4 ELF checked.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import BudgetError, McuforgeError
from .engine import Engine
from .measure import Budget, torch_module, accuracy, recalibrate_bn, train
from .space import WIDTHS, Arch, Space, build, resolutions_for, supernet


# ---- data ---------------------------------------------------------------------------

@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: int

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def in_resolution(self) -> int:
        return int(self.x_train.shape[2])


def check_data(x, y, where: str) -> tuple[np.ndarray, np.ndarray, int]:
    """x (N, C, H, W) finite floats, y (N,) integer labels of at least two
    classes; one McuforgeError naming the problem otherwise."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise McuforgeError(f"{where}: x has shape {x.shape}; expected (N, C, H, W) images, e.g. (1797, 1, 8, 8)")
    if x.shape[2] != x.shape[3]:
        raise McuforgeError(f"{where}: x has {x.shape[2]}x{x.shape[3]} images; the supernet search needs square images "
                            "(H == W): use --space families (any shape, 1-D too), or crop or pad them")
    if x.dtype.kind not in "fiu":
        raise McuforgeError(f"{where}: x has dtype {x.dtype}; expected float32 pixel values")
    x = x.astype(np.float32)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise McuforgeError(f"{where}: x contains {bad} NaN or infinite value(s); clean or drop those samples")
    if y.ndim != 1 or len(y) != len(x):
        raise McuforgeError(f"{where}: y has shape {y.shape}; expected ({len(x)},), one integer label per image")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise McuforgeError(f"{where}: y has dtype {y.dtype} with non-integer values; expected integer class labels")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise McuforgeError(f"{where}: y has negative labels ({int(y.min())}); expected classes 0..K-1")
    present = np.unique(y)
    if len(present) < 2:
        raise McuforgeError(f"{where}: y has only one class ({int(present[0]) if len(present) else 'none'}); "
                            "a classifier needs samples of at least two classes")
    if len(x) < 4 * len(present):
        raise McuforgeError(f"{where}: {len(x)} samples for {len(present)} classes; give at least 4 per class")
    return x, y, int(y.max()) + 1


def split(x: np.ndarray, y: np.ndarray, classes: int, val_fraction: float = 0.2, seed: int = 0) -> Data:
    """Stratified, seeded train / held-out split."""
    rng = np.random.default_rng(seed)
    val = []
    for c in range(classes):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val.extend(idx[:int(round(len(idx) * val_fraction))] if len(idx) > 1 else [])
    mask = np.zeros(len(y), bool)
    mask[val] = True
    return Data(x[~mask], y[~mask], x[mask], y[mask], classes)


def read_npz(path: Path, layout: str, optional: tuple[str, ...] = ()) -> dict:
    """x, y and those of `optional` the file has, from an .npz; one clear
    error for a missing or unreadable file or a missing x or y (layout: what
    x must be, for the message)."""
    path = Path(path)
    if not path.is_file():
        raise McuforgeError(f"{path}: data file not found (expected an .npz with arrays x and y)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise McuforgeError(f"{path}: no array named {' or '.join(missing)}; the .npz needs x {layout} "
                                    f"and y (N,) (it has: {', '.join(f.files) or 'nothing'})")
            return {k: f[k] for k in ("x", "y") + optional if k in f.files}
    except McuforgeError:
        raise
    except Exception as err:
        raise McuforgeError(f"{path}: not a readable .npz file ({err.__class__.__name__})") from None


def load_data(path: Path, seed: int = 0) -> Data:
    arrays = read_npz(path, "(N, C, H, W)")
    x, y, classes = check_data(arrays["x"], arrays["y"], str(path))
    return split(x, y, classes, seed=seed)


# ---- progress -----------------------------------------------------------------------

class Progress:
    """A one-line progress bar per phase on stderr (or nothing)."""

    def __init__(self, enabled: bool = True, stream=None):
        import sys

        self.enabled, self.stream = enabled, stream or sys.stderr
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.phase, self.total, self.done = "", 0, 0

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, max(1, total), 0
        self.update(0)

    def update(self, advance: int = 1, detail: str = "", final: bool = False) -> None:
        if not self.enabled:
            return
        self.done = min(self.total, self.done + advance)
        filled = int(24 * self.done / self.total)
        line = (f"[{time.monotonic() - self.start:6.1f}s] {self.phase:<22} [{'#' * filled}{'.' * (24 - filled)}] "
                f"{self.done}/{self.total} {detail}")
        if self.tty:
            print("\r" + line.ljust(110), end="", file=self.stream, flush=True)
        elif final:
            print(line, file=self.stream, flush=True)

    def end(self, detail: str = "") -> None:
        if self.enabled:
            self.done = self.total
            self.update(0, detail, final=True)
            if self.tty:
                print(file=self.stream, flush=True)

    def say(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.start:6.1f}s] {msg}", file=self.stream, flush=True)


# ---- step 1: search-space optimization ---------------------------------------------------

@dataclass
class SpaceChoice:
    width: float
    resolution: int
    table: list[dict]
    rows: list[dict]  # every measured subnet

    @property
    def chosen(self) -> dict:
        return next(r for r in self.table if r["chosen"])

    def fitting(self) -> list[Arch]:
        """The measured subnets of the chosen pair that fit."""
        return [Arch.from_dict(json.loads(r["arch"])) for r in self.rows
                if r["fits"] and (r["width"], r["resolution"]) == (self.width, self.resolution)]


def _calibration_samples(data: Data, n: int = 32) -> np.ndarray:
    return data.x_train[:n]


def optimize_space(engine: Engine, data: Data, budget: Budget, widths=WIDTHS, resolutions=None,
                   samples: int = 8, seed: int = 0, deadline: float | None = None,
                   progress: Progress | None = None, min_fit_fraction: float = 0.2) -> SpaceChoice:
    """MCUNet's first step with exact measurements (see the module doc)."""
    progress = progress or Progress(False)
    resolutions = resolutions or resolutions_for(data.in_resolution)
    pairs = [(w, r) for r in resolutions for w in widths]
    ctx = {"token": f"space-{seed}-{budget}", "budget": budget, "calibration": _calibration_samples(data)}
    progress.begin("search space", len(pairs) * samples)
    rows: list[dict] = []
    # one round of every pair first, so a deadline still leaves every pair measured
    per_pair = {p: _space_samples(Space(data.in_channels, data.in_resolution, data.classes, *p), samples, seed)
                for p in pairs}
    for rnd in range(samples):
        batch = [(p, per_pair[p][rnd]) for p in pairs]
        for ((w, r), _), res in zip(batch, engine.map("measure", ctx, [a for _, a in batch])):
            rows.append(dict(res, width=w, resolution=r))
        progress.update(len(batch))
        if deadline is not None and time.monotonic() > deadline:
            break
    table = []
    for w, r in pairs:
        mine = [x for x in rows if x["width"] == w and x["resolution"] == r]
        fit = [x for x in mine if x["fits"]]
        peaks = [x["sram_bytes"] for x in mine if x["sram_bytes"] is not None]
        macs = [x["macs"] for x in fit]
        table.append({"width": w, "resolution": r, "sampled": len(mine), "fitting": len(fit),
                      "fit_fraction": round(len(fit) / max(1, len(mine)), 3),
                      "mean_macs_fitting": float(np.mean(macs)) if macs else 0.0,
                      "max_macs_fitting": int(max(macs)) if macs else 0,
                      "min_sram_bytes": int(min(peaks)) if peaks else None, "chosen": False})
    candidates = [t for t in table if t["fitting"] and t["fit_fraction"] >= min_fit_fraction] or \
        [t for t in table if t["fitting"]]
    if not candidates:
        raise _no_fit_error(rows, budget)
    best = max(candidates, key=lambda t: (t["mean_macs_fitting"], t["fit_fraction"], -t["width"], -t["resolution"]))
    best["chosen"] = True
    progress.end(f"chose width {best['width']}, resolution {best['resolution']}")
    return SpaceChoice(best["width"], best["resolution"], table, rows)


def _space_samples(space: Space, n: int, seed: int) -> list[Arch]:
    rng = random.Random(f"{seed}-{space.width}-{space.resolution}")
    return [space.smallest()] + [space.sample(rng) for _ in range(n - 1)]


def _no_fit_error(rows: list[dict], budget: Budget) -> BudgetError:
    peaks = [r for r in rows if r["sram_bytes"] is not None]
    if not peaks:
        return BudgetError(f"no subnet of the search space can be planned with --schedule {budget.schedule} "
                           f"({rows[0]['reason'] if rows else 'nothing measured'}); use --schedule layer or auto")
    low = min(peaks, key=lambda r: r["sram_bytes"])
    # flash as linked where the plan fitted the SRAM, else its weights alone (a lower bound)
    flashes = [r["flash_bytes"] or r["plan_weight_bytes"] for r in rows if r.get("plan_weight_bytes")]
    low_flash = min(flashes) if flashes else None
    need = [f"raise --sram-budget to at least {math.ceil(low['sram_bytes'] / 1024)}K"] \
        if low["sram_bytes"] > budget.sram else []
    if low_flash is None or low_flash > budget.flash or not need:
        need.append("raise --flash-budget" + (f" to at least {math.ceil(low_flash / 1024)}K"
                                              if low_flash and low_flash > budget.flash else ""))
    need = " and ".join(need)
    return BudgetError(
        f"no subnet fits {budget.sram} bytes of SRAM and {budget.flash} bytes of flash (schedule {budget.schedule}): "
        f"the smallest peak SRAM found is {low['sram_bytes']} bytes (width {low['width']}, resolution "
        f"{low['resolution']})" + (f", the smallest flash at least {low_flash} bytes" if low_flash else "")
        + f"; {need}" + (" or allow --schedule auto" if budget.schedule == "layer" and low["sram_bytes"] > budget.sram
                        else ""))


# ---- step 2: supernet, evolution, fine-tune ----------------------------------------------

def train_supernet(space: Space, data: Data, epochs: int, seed: int = 0, deadline: float | None = None,
                   progress: Progress | None = None):
    """Sandwich rule with in-place distillation (see the module doc)."""
    torch = torch_module()
    F = torch.nn.functional
    progress = progress or Progress(False)
    torch.manual_seed(seed)
    net = supernet(space)
    rng = random.Random(seed)
    largest, smallest = space.largest(), space.smallest()

    def step(n, xb, yb):
        logits = n(xb, largest)
        loss = F.cross_entropy(logits, yb)
        soft = F.softmax(logits.detach(), 1)
        for arch in (smallest, space.sample(rng), space.sample(rng)):
            out = n(xb, arch)
            loss = loss + 0.5 * F.cross_entropy(out, yb) + 0.5 * F.kl_div(F.log_softmax(out, 1), soft,
                                                                           reduction="batchmean")
        return loss

    progress.begin("train supernet", epochs)
    done = train(net, data.x_train, data.y_train, epochs, 3e-3, seed, deadline, step,
                 on_epoch=lambda e: progress.update(1))
    progress.end(f"{done} epoch(s)")
    return net, done


@dataclass
class Evolution:
    best: dict
    history: list[dict] = field(default_factory=list)
    evaluated: int = 0
    fitting: int = 0
    population: list[dict] = field(default_factory=list)  # the last generation, best first
    context: dict = field(default_factory=dict)  # what the workers were given (budget, weights, data)


def evolve(engine: Engine, net, space: Space, data: Data, budget: Budget, population: int = 8,
           generations: int = 4, seed: int = 0, deadline: float | None = None,
           progress: Progress | None = None, seeds: list[Arch] = ()) -> Evolution:
    """Evolutionary search under the budgets, scored by held-out accuracy
    with shared weights; every constraint check is a real compile."""
    progress = progress or Progress(False)
    rng = random.Random(seed)
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    ctx = {"token": f"evolve-{seed}-{id(net)}-{time.monotonic()}", "budget": budget, "space": space,
           "calibration": _calibration_samples(data), "supernet": state,
           "x_bn": data.x_train[:256], "x_val": data.x_val, "y_val": data.y_val}
    seen: dict[str, dict] = {}
    evo = Evolution(best={}, context=ctx)

    def evaluate(archs: list[Arch]) -> list[dict]:
        fresh = list({a.key(): a for a in archs if a.key() not in seen}.values())
        for a, row in zip(fresh, engine.map("candidate", ctx, fresh)):
            seen[a.key()] = dict(row, arch_obj=a)
            evo.evaluated += 1
            evo.fitting += int(row["fits"])
        progress.update(len(fresh), _best_text(seen))
        return [seen[a.key()] for a in archs]

    def rank(rows):
        uniq = {r["arch"]: r for r in rows if r["fits"]}
        return sorted(uniq.values(), key=lambda r: (-r["accuracy"], r["sram_bytes"], r["flash_bytes"], r["arch"]))

    progress.begin("evolutionary search", population * (generations + 1))
    # the first population: the fitting subnets the space step found, random samples, and (while
    # too few fit) mutations of the fitting ones, which stay near the budget boundary
    pop = rank(evaluate(list(seeds)[:population])) if seeds else []
    attempts = 0
    while len(pop) < population and attempts < 6:
        fresh = [space.sample(rng) if not pop or i % 2 else space.mutate(rng.choice(pop)["arch_obj"], rng)
                 for i in range(population - len(pop))]
        pop = rank(pop + evaluate(fresh))[:population]
        attempts += 1
        if deadline is not None and time.monotonic() > deadline and pop:
            break
    if not pop:
        rows = [dict(r, width=space.width, resolution=space.resolution) for r in seen.values()]
        raise _no_fit_error(rows, budget)
    evo.history.append(_generation(0, pop))
    n_parents = max(2, population // 4)
    for g in range(1, generations + 1):
        if deadline is not None and time.monotonic() > deadline:
            break
        parents = pop[:n_parents]
        children = []
        for i in range(population):
            if i % 2 == 0:
                children.append(space.mutate(rng.choice(parents)["arch_obj"], rng))
            else:
                a, b = rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
                children.append(space.mutate(space.crossover(a["arch_obj"], b["arch_obj"], rng), rng, 0.1))
        pop = rank(pop + evaluate(children))[:population]
        evo.history.append(_generation(g, pop))
    evo.best, evo.population = pop[0], pop
    progress.end(_best_text(seen))
    return evo


def _best_text(seen: dict) -> str:
    fit = [r for r in seen.values() if r["fits"]]
    if not fit:
        return "no fitting subnet yet"
    best = max(fit, key=lambda r: r["accuracy"])
    return f"best held-out {best['accuracy']:.1%} ({best['sram_bytes']} B SRAM, {best['flash_bytes']} B flash)"


def _generation(g: int, pop: list[dict]) -> dict:
    return {"generation": g, "best_accuracy": pop[0]["accuracy"],
            "mean_accuracy": float(np.mean([r["accuracy"] for r in pop])),
            "best_sram_bytes": pop[0]["sram_bytes"], "best_flash_bytes": pop[0]["flash_bytes"]}


def finetune(net, arch: Arch, data: Data, epochs: int, seed: int = 0, deadline: float | None = None):
    """The winner as a plain module with the supernet's weights, trained a
    few more epochs at a lower learning rate."""
    sub = net.extract(arch)
    recalibrate_bn(sub, data.x_train[:256])
    if epochs:
        train(sub, data.x_train, data.y_train, epochs, 1e-3, seed, deadline)
    return sub


def row_public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "arch_obj"}
