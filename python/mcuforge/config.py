"""BuildConfig: every option of a build, from the CLI, CMake or a Kconfig .config."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .ir import McuforgeError

SCHEDULES = ("layer", "patch", "auto")
TRAINING_MODES = ("none", "bias", "sparse", "full")
KERNEL_SETS = ("portable", "arm-dsp")


@dataclass(frozen=True)
class BuildConfig:
    name: str | None = None  # C identifier prefix; default: the model file's stem
    sram_budget: int | None = None  # bytes; None = unlimited
    flash_budget: int | None = None
    schedule: str = "layer"
    patch_grid: int = 0  # 0 = chosen by the planner
    patch_max_overhead: float | None = None  # extra MACs a patch schedule may cost (0.3 = 30%); None: default
    input_stream: bool = False  # patch schedule: the input arrives region by region through a callback
    training: str = "none"
    kernels: str = "portable"
    calibration: str | None = None

    def validate(self) -> "BuildConfig":
        if self.schedule not in SCHEDULES:
            raise McuforgeError(f"--schedule: '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        if self.training not in TRAINING_MODES:
            raise McuforgeError(f"--training: '{self.training}' is not one of {', '.join(TRAINING_MODES)}")
        if self.kernels not in KERNEL_SETS:
            raise McuforgeError(f"--kernels: '{self.kernels}' is not one of {', '.join(KERNEL_SETS)}")
        if self.patch_max_overhead is not None and not 0 <= self.patch_max_overhead <= 100:
            raise McuforgeError("--patch-max-overhead: give a fraction of extra MACs, e.g. 0.3 for 30%")
        if self.patch_grid < 0:
            raise McuforgeError("--patch-grid: must be 0 (automatic) or a positive grid size")
        if self.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise McuforgeError(f"--name: '{self.name}' is not a C identifier (letters, digits, underscores)")
        return self

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def merged(self, **overrides) -> "BuildConfig":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(i?[bB])?\s*$")


def parse_size(text: str, flag: str) -> int:
    """'256K' -> 262144, '1M' -> 1048576, '1000' -> 1000 (bytes)."""
    m = _SIZE.match(str(text))
    if not m:
        raise McuforgeError(f"{flag}: '{text}' is not a size (examples: 65536, 64K, 1M)")
    value = float(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    return int(value)


def from_kconfig(path: Path) -> dict:
    """The MCUFORGE_* options of a Zephyr .config as BuildConfig fields."""
    path = Path(path)
    if not path.is_file():
        raise McuforgeError(f"{path}: Kconfig .config file not found")
    values: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^(CONFIG_MCUFORGE\w*)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2).strip().strip('"')
    if values.get("CONFIG_MCUFORGE") != "y":
        raise McuforgeError(f"{path}: CONFIG_MCUFORGE is not enabled in this .config")
    out: dict = {}
    if "CONFIG_MCUFORGE_SRAM_BUDGET_KB" in values:
        out["sram_budget"] = int(values["CONFIG_MCUFORGE_SRAM_BUDGET_KB"]) * 1024
    if "CONFIG_MCUFORGE_FLASH_BUDGET_KB" in values:
        out["flash_budget"] = int(values["CONFIG_MCUFORGE_FLASH_BUDGET_KB"]) * 1024
    for choice, key, options in (("SCHEDULE", "schedule", SCHEDULES), ("TRAINING", "training", TRAINING_MODES),
                                 ("KERNELS", "kernels", KERNEL_SETS)):
        for opt in options:
            if values.get(f"CONFIG_MCUFORGE_{choice}_{opt.upper().replace('-', '_')}") == "y":
                out[key] = opt
    if "CONFIG_MCUFORGE_PATCH_GRID" in values:
        out["patch_grid"] = int(values["CONFIG_MCUFORGE_PATCH_GRID"])
    return out
