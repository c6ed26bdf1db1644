"""BuildConfig: every option of a build, from the CLI, CMake or a Kconfig .config."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .ir import McuforgeError

SCHEDULES = ("layer", "patch", "auto")
TRAINING_MODES = ("none", "bias", "sparse", "full")
KERNEL_SETS = ("portable", "arm-dsp")
ACTIVATION_TYPES = ("int8", "int16")  # a float model's activations after PTQ (int16: TFLite's 16x8 scheme)
STACK_TARGETS = ("cortex-m4", "cortex-m3", "cortex-m7", "host", "none")


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
    # arm-dsp: "auto" (the planner chooses each layer's variant within the budgets, codegen/variants.py) or
    # "default" (every layer its first variant, whatever its scratch: the build issue 18 measured)
    kernel_variants: str = "auto"
    calibration: str | None = None
    activations: str = "int8"  # float models' PTQ: int8, or int16 (16x8: int16 activations, int8 weights)
    # on-device training (DESIGN.md, "Training"); None: the documented default
    learning_rate: float | None = None
    momentum: float | None = None  # SGD momentum (0: plain SGD, no optimizer state)
    train_bias_layers: int | None = None  # biases of the last N layers
    train_weight_layers: tuple[int, ...] | None = None  # weight-layer indices whose weights are trained
    train_weight_ratio: tuple[float, ...] | None = None  # leading fraction of output channels per such layer
    train_data: str | None = None  # .npz (x, y) for choosing the sparse policy under the SRAM budget
    train_qas: bool = True  # quantization-aware scaling of the gradients (off: plain SGD on int8 units)
    train_reorder: bool = True  # operator reordering: apply each update as soon as its gradient exists
    stack_target: str = "cortex-m4"  # core whose -O2 build gives <NAME>_STACK_SIZE (stack.TARGETS, or "none")

    def validate(self) -> "BuildConfig":
        if self.schedule not in SCHEDULES:
            raise McuforgeError(f"--schedule: '{self.schedule}' is not one of {', '.join(SCHEDULES)}")
        if self.kernel_variants not in ("auto", "default"):
            raise McuforgeError(f"kernel_variants: '{self.kernel_variants}' is not one of auto, default")
        if self.training not in TRAINING_MODES:
            raise McuforgeError(f"--training: '{self.training}' is not one of {', '.join(TRAINING_MODES)}")
        if self.kernels not in KERNEL_SETS:
            raise McuforgeError(f"--kernels: '{self.kernels}' is not one of {', '.join(KERNEL_SETS)}")
        if self.activations not in ACTIVATION_TYPES:
            raise McuforgeError(f"--activations: '{self.activations}' is not one of {', '.join(ACTIVATION_TYPES)}")
        if self.patch_max_overhead is not None and not 0 <= self.patch_max_overhead <= 100:
            raise McuforgeError("--patch-max-overhead: give a fraction of extra MACs, e.g. 0.3 for 30%")
        if self.patch_grid < 0:
            raise McuforgeError("--patch-grid: must be 0 (automatic) or a positive grid size")
        if self.learning_rate is not None and not (0 < self.learning_rate < 1e6):
            raise McuforgeError(f"--learning-rate: {self.learning_rate} must be a positive number such as 0.05")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise McuforgeError(f"--momentum: {self.momentum} must be in [0, 1), e.g. 0.9 (0: plain SGD)")
        if self.train_bias_layers is not None and self.train_bias_layers < 0:
            raise McuforgeError("--train-bias-layers: must be 0 or a positive number of layers")
        if self.train_weight_ratio is not None:
            if any(not 0 < r <= 1 for r in self.train_weight_ratio):
                raise McuforgeError("--train-weight-ratio: every ratio must be in (0, 1], e.g. 1,0.5,0.25")
            if self.train_weight_layers is None or len(self.train_weight_ratio) != len(self.train_weight_layers):
                raise McuforgeError("--train-weight-ratio: give one ratio per layer of --train-weight-layers")
        if self.stack_target not in STACK_TARGETS:
            raise McuforgeError(f"--stack-target: '{self.stack_target}' is not one of {', '.join(STACK_TARGETS)}")
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
    if values.get("CONFIG_MCUFORGE_STACK_TARGET"):
        out["stack_target"] = values["CONFIG_MCUFORGE_STACK_TARGET"]
    if int(values.get("CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT") or 0) > 0:
        out["patch_max_overhead"] = int(values["CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT"]) / 100
    if "CONFIG_MCUFORGE_PATCH_GRID" in values:
        out["patch_grid"] = int(values["CONFIG_MCUFORGE_PATCH_GRID"])
    if values.get("CONFIG_MCUFORGE_TRAINING_LEARNING_RATE"):
        out["learning_rate"] = parse_float(values["CONFIG_MCUFORGE_TRAINING_LEARNING_RATE"],
                                           "CONFIG_MCUFORGE_TRAINING_LEARNING_RATE")
    if values.get("CONFIG_MCUFORGE_TRAINING_MOMENTUM"):
        out["momentum"] = parse_float(values["CONFIG_MCUFORGE_TRAINING_MOMENTUM"], "CONFIG_MCUFORGE_TRAINING_MOMENTUM")
    if "CONFIG_MCUFORGE_TRAINING_BIAS_LAYERS" in values:
        out["train_bias_layers"] = int(values["CONFIG_MCUFORGE_TRAINING_BIAS_LAYERS"])
    return out


def parse_float(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise McuforgeError(f"{flag}: '{text}' is not a number (example: 0.05)") from None


def parse_int_list(text: str, flag: str) -> tuple[int, ...]:
    """'3,5' -> (3, 5)."""
    try:
        return tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise McuforgeError(f"{flag}: '{text}' is not a comma-separated list of layer indices (example: 4,5)") from None


def parse_float_list(text: str, flag: str) -> tuple[float, ...]:
    """'1,0.5' -> (1.0, 0.5)."""
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise McuforgeError(f"{flag}: '{text}' is not a comma-separated list of ratios (example: 1,0.5)") from None
