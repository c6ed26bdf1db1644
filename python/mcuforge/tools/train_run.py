"""``mcuforge run DIR --input x.npy --train labels.npy``: the generated training step on the host
(or a Cortex-M under QEMU), printing each step's loss and the trained state's checksum the way
samples/on_device_learning prints it, so a device's console can be compared line by line."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import McuforgeError
from ..plan import Plan
from .. import state_record


def fnv1a(data: bytes) -> int:
    """The sample's checksum of the state (FNV-1a, 32 bit)."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def load_labels(path: Path, plan: Plan, n: int) -> list[int]:
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise McuforgeError(f"--train: {path}: not a readable .npy file ({err})") from None
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind not in "iu":
        raise McuforgeError(f"--train: {path}: labels must be integers, got {labels.dtype}")
    if labels.size != n:
        raise McuforgeError(f"--train: {path}: {labels.size} labels for {n} input(s) in --input; give one per input")
    bad = [int(v) for v in labels if not 0 <= int(v) < plan.training.classes]
    if bad:
        raise McuforgeError(f"--train: {path}: label {bad[0]} is outside 0..{plan.training.classes - 1}")
    return [int(v) for v in labels]


def run(plan: Plan, outdir: Path, x: np.ndarray, labels_path: Path, epochs: int = 1, target: str = "host",
        opt: str = "-O2", save_state: Path | None = None) -> int:
    from . import harness

    if plan.training is None:
        raise McuforgeError(f"--train: {outdir} was compiled without --training; compile with --training bias|sparse|full")
    if epochs < 1:
        raise McuforgeError("--epochs: must be 1 or more")
    labels = load_labels(labels_path, plan, len(x))
    xs = np.concatenate([x] * epochs)
    all_labels = labels * epochs
    with tempfile.TemporaryDirectory(prefix="mcuforge-train-") as tmp:
        if target == "host":
            result = harness.run_host(plan, harness.build_host(plan, outdir, Path(tmp), opt), xs, all_labels)
        else:
            result = harness.run_qemu(plan, harness.build_qemu(plan, outdir, Path(tmp), target, opt), xs,
                                      all_labels, target)
    for i, (label, loss) in enumerate(zip(all_labels, result.losses)):
        print(f"step {i + 1} epoch {i // len(labels) + 1} label {label} loss {float(loss):.6f}")
    record = state_record.pack(state_record.identity(plan), result.state)
    print(f"{plan.name}: {target}, {len(all_labels)} training step(s), mean loss "
          f"{float(np.mean(result.losses)):.6f}")
    print(f"train state checksum 0x{fnv1a(result.state):08x}")
    print(f"state record {len(record)} bytes, CRC-32 0x{int.from_bytes(record[state_record.CRC_OFFSET:][:4], 'little'):08x}")
    if save_state:
        Path(save_state).write_bytes(record)
        print(f"state record written to {save_state}")
    return 0
