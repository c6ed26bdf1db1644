"""What a candidate costs and how good it is, measured for real.

`measure` compiles a network with mcuforge (frontend, planner with the
allowed schedule) and, when the plan's arena and weights are within the
budgets, generates the C and links a Cortex-M4 image whose model RAM and
flash (weights + code, the same rule as ``check-elf --model``) are read back
from the ELF. A plan already over budget needs no ELF: the arena is exact and
the weights alone exceed the flash.

`accuracy` scores a subnet with weights shared from a supernet: the weights
are copied into the plain module, BatchNorm statistics are recomputed on a
fixed slice of the training data, and the held-out split is classified.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import BuildConfig
from ..ir import BudgetError, McuforgeError

MODEL_NAME = "nas"
ELF_OPT = "-Os"  # size-optimised, as an MCU build for a flash budget would be
ELF_TARGET = "qemu-cortex-m4"


@dataclass(frozen=True)
class Budget:
    sram: int
    flash: int
    schedule: str = "layer"  # layer | patch | auto


def torch_module():
    import torch

    torch.set_num_threads(int(os.environ.get("MCUFORGE_NAS_THREADS", "1")))
    return torch


_WORKDIR: list[Path] = []


def workdir() -> Path:
    """A temporary directory owned by this process (removed at exit)."""
    if not _WORKDIR:
        import atexit

        d = Path(tempfile.mkdtemp(prefix="mcuforge-nas-"))
        atexit.register(shutil.rmtree, d, True)
        _WORKDIR.append(d)
    return _WORKDIR[0]


def _calibration(samples: np.ndarray) -> str:
    path = workdir() / f"calibration-{samples.shape[2]}.npy"
    if not path.exists():
        np.save(path, samples.astype(np.float32))
    return str(path)


def export_graph(net, in_channels: int, in_resolution: int, name: str = MODEL_NAME):
    from ..frontends.torch import from_torch

    torch = torch_module()
    return from_torch(net.eval(), torch.zeros(1, in_channels, in_resolution, in_resolution), name=name)


def plan_for(graph, budget: Budget, calibration: str | None, name: str = MODEL_NAME):
    """The plan under the allowed schedule and its peak; for `auto` the
    layer-by-layer plan when it fits, else the patch plan. Returns (plan or
    None, smallest peak seen, reason)."""
    from ..pipeline import plan_model

    cfg = BuildConfig(name=name, calibration=calibration, schedule=budget.schedule,
                      sram_budget=budget.sram if budget.schedule == "auto" else None)
    try:
        plan = plan_model(graph, cfg)
        return plan, plan.sram_bytes(), ""
    except BudgetError:  # auto: neither schedule fits; keep the lower peak for the report
        layer = plan_model(graph, BuildConfig(name=name, calibration=calibration))
        peak = layer.sram_bytes()
        try:
            patch = plan_model(graph, BuildConfig(name=name, calibration=calibration, schedule="patch"))
            peak = min(peak, patch.sram_bytes())
            return (patch if patch.sram_bytes() < layer.sram_bytes() else layer), peak, "over the SRAM budget"
        except McuforgeError:
            return layer, peak, "over the SRAM budget"
    except McuforgeError as err:  # patch: no layer prefix can run on patches
        return None, None, str(err)


def elf_memory(plan, outdir: Path, builddir: Path) -> dict:
    """Generate the C, link the Cortex-M4 image, read the model's memory
    from the ELF (what ``check-elf --model`` reports)."""
    from ..tools import elfcheck, qemu
    from ..pipeline import write_outputs

    write_outputs(plan, outdir)
    elf = qemu.build(plan, outdir, builddir, target=ELF_TARGET, opt=ELF_OPT)
    m = elfcheck.model_breakdown(elfcheck.read_elf(elf), plan.name)
    return {"elf": str(elf), "ram_bytes": m["ram_bytes"], "arena_bytes": m["arena_bytes"],
            "flash_bytes": m["flash_bytes"], "weights_bytes": m["weights_bytes"], "code_bytes": m["code_bytes"]}


def measurement_graph(arch):
    """The graph whose memory a candidate is measured on: the subnet with
    seeded weights. Memory does not depend on the weights' values, but an
    untrained classifier's bias over a near-constant input quantizes to
    int32's limit, a layer the accumulator bound rightly refuses, so the
    fully connected biases are zero here."""
    from .space import build

    torch = torch_module()
    torch.manual_seed(0)
    net = build(arch)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.zero_()
    return export_graph(net, arch.in_channels, arch.in_resolution)


def measure(arch, budget: Budget, calibration_samples: np.ndarray) -> dict:
    """Exact peak SRAM and flash of `arch` under `budget` (see the module doc)."""
    graph = measurement_graph(arch)
    plan, peak, reason = plan_for(graph, budget, _calibration(calibration_samples))
    row = {"arch": arch.key(), "fits": False, "sram_bytes": peak, "flash_bytes": None, "reason": reason}
    if plan is None:
        return row
    layer_macs = plan.patch.layer_macs if plan.patch is not None else plan.macs
    row.update(macs=int(layer_macs), run_macs=int(plan.macs), schedule=plan.schedule,
               plan_weight_bytes=int(plan.weight_bytes))
    if reason:
        return row
    if plan.sram_bytes() > budget.sram:
        row["reason"] = "over the SRAM budget"
        return row
    return elf_fit(plan, budget, row)


def elf_fit(plan, budget: Budget, row: dict) -> dict:
    """`row` with the plan's ELF figures (SRAM, flash, code, arena), `fits`
    and the reason it does not; a plan whose weights alone are over the
    flash budget is not built."""
    if plan.weight_bytes > budget.flash:
        row.update(reason="weights alone over the flash budget", flash_bytes=int(plan.weight_bytes))
        return row
    scratch = Path(tempfile.mkdtemp(dir=workdir()))
    try:
        mem = elf_memory(plan, scratch / "c", scratch / "build")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    row.update(sram_bytes=mem["ram_bytes"], flash_bytes=mem["flash_bytes"], arena_bytes=mem["arena_bytes"],
               code_bytes=mem["code_bytes"])
    over = [w for w, used, b in (("SRAM", mem["ram_bytes"], budget.sram), ("flash", mem["flash_bytes"], budget.flash))
            if used > b]
    row["fits"] = not over
    row["reason"] = " and ".join(f"over the {w} budget" for w in over)
    return row


# ---- training and accuracy --------------------------------------------------------

def recalibrate_bn(net, x: np.ndarray, batch: int = 128) -> None:
    """Running BatchNorm statistics recomputed on `x` (cumulative average)."""
    torch = torch_module()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            net(torch.from_numpy(x[i:i + batch]))
    for m in bns:
        m.momentum = 0.1
    net.eval()


def classify(net, x: np.ndarray, batch: int = 256) -> np.ndarray:
    torch = torch_module()
    net.eval()
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(x[i:i + batch])).argmax(1).numpy()
                               for i in range(0, len(x), batch)])


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    return float((classify(net, x) == y).mean())


def train(net, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int, deadline: float | None = None,
          step=None, on_epoch=None) -> int:
    """Adam + cosine schedule, batch 64; `step(net, xb, yb) -> loss` replaces
    the plain cross-entropy step (the supernet's sandwich rule). Stops after
    the epoch in which `deadline` (time.monotonic()) passes; returns the
    epochs run."""
    import time

    torch = torch_module()
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = step or (lambda n, xb, yb: torch.nn.functional.cross_entropy(n(xb), yb))
    done = 0
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            loss_fn(net, xt[idx], yt[idx]).backward()
            opt.step()
        sched.step()
        done += 1
        if on_epoch:
            on_epoch(done)
        if deadline is not None and time.monotonic() > deadline:
            break
    net.eval()
    return done
