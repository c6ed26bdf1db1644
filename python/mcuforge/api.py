"""The Python API: compile a model, look at it, run it, train it, from a script or a notebook.

>>> import mcuforge
>>> m = mcuforge.compile(model, example_input=x, calibration=x, sram_budget="64K", out=out)
>>> m.arena_size, m.report()        # doctest: +SKIP
>>> y = m.run(x)                    # the generated C, built and run on this machine

Everything here goes through the same pipeline as ``mcuforge compile`` (same
bytes out for the same options); errors are ``mcuforge.BadInput`` (exit 2 on
the command line) and ``mcuforge.OverBudget`` (exit 3).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import BuildConfig, parse_float_list, parse_int_list, parse_size
from .errors import BadInput
from .plan import Plan

__all__ = ["compile", "load", "CompiledModel", "TrainingStep", "Report"]

_SIZES = ("sram_budget", "flash_budget")


def _config(name: str | None, calibration: str | None, options: dict[str, Any]) -> BuildConfig:
    """Keyword options -> BuildConfig: the CLI's flags with dashes as underscores; sizes as
    bytes or "64K"/"1M"; layer lists as sequences or "1,2"."""
    fields = set(BuildConfig.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise BadInput(f"mcuforge.compile: unknown option(s) {', '.join(unknown)}; the options are "
                       f"{', '.join(sorted(fields - {'name', 'calibration'}))}")
    opts = dict(options)
    for k in _SIZES:
        if isinstance(opts.get(k), str):
            opts[k] = parse_size(opts[k], k)
    if isinstance(opts.get("train_weight_layers"), str):
        opts["train_weight_layers"] = parse_int_list(opts["train_weight_layers"], "train_weight_layers")
    if isinstance(opts.get("train_weight_ratio"), str):
        opts["train_weight_ratio"] = parse_float_list(opts["train_weight_ratio"], "train_weight_ratio")
    for k in ("train_weight_layers", "train_weight_ratio"):
        if opts.get(k) is not None:
            opts[k] = tuple(opts[k])
    for k in ("train_data",):
        if opts.get(k) is not None:
            opts[k] = str(opts[k])
    return BuildConfig(name=name, calibration=calibration, **opts).validate()


def _graph(model: Any, example_input: Any, name: str | None):
    """A model file, a torch.nn.Module (with an example input) or an mcuforge Graph."""
    from .ir import Graph

    if isinstance(model, (str, Path)):
        return Path(model)
    if isinstance(model, Graph):
        return model
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        if example_input is None:
            raise BadInput("mcuforge.compile: a PyTorch module needs example_input= (a tensor of the input's "
                           "shape, batch 1)")
        import torch

        from .frontends.torch import from_torch

        x = example_input if isinstance(example_input, torch.Tensor) else torch.from_numpy(
            np.asarray(example_input, dtype=np.float32))
        return from_torch(model, x, name=name or "model")
    raise BadInput(f"mcuforge.compile: cannot compile a {type(model).__name__}; give a model file "
                   "(.onnx, .tflite, .pt2), a torch.nn.Module with example_input=, or an mcuforge Graph")


def compile(model: Any, example_input: Any = None, calibration: Any = None, *, out: str | Path | None = None,
            name: str | None = None, progress: bool = False, warn_over_budget: bool = False,
            **options: Any) -> "CompiledModel":
    """Compile `model` into `out` (default: a new temporary directory) and return the result.

    model: a file (.onnx, .tflite, .pt2), a torch.nn.Module (with `example_input`, batch 1)
    or a Graph. calibration: samples for a float model's quantization, a .npy/.npz path or
    an array (N, ...) in the model's own layout (several inputs: a dict of arrays by input
    name). options: the command line's flags (sram_budget="64K", flash_budget=...,
    schedule="layer"|"patch"|"auto", kernels="portable"|"arm-dsp", training="none"|"bias"|"sparse"|"full", learning_rate=..., ...).
    """
    from .pipeline import compile_model, no_progress, stderr_progress

    outdir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mcuforge-"))
    graph = _graph(model, example_input, name)
    with tempfile.TemporaryDirectory(prefix="mcuforge-calibration-") as tmp:
        calib = calibration
        if isinstance(calibration, dict):  # a model with several inputs: one array per input name
            calib = Path(tmp) / "calibration.npz"
            np.savez(calib, **{k: np.asarray(v, dtype=np.float32) for k, v in calibration.items()})
        elif calibration is not None and not isinstance(calibration, (str, Path)):
            calib = Path(tmp) / "calibration.npy"
            np.save(calib, np.asarray(calibration, dtype=np.float32))
        config = _config(name, str(calib) if calib is not None else None, options)
        plan = compile_model(graph, config, outdir, stderr_progress() if progress else no_progress,
                             warn_over_budget=warn_over_budget)
    return CompiledModel(plan, outdir)


def load(directory: str | Path) -> "CompiledModel":
    """A model compiled earlier (by `compile` or `mcuforge compile -o DIR`)."""
    directory = Path(directory)
    return CompiledModel(Plan.load(directory), directory)


class Report(dict):
    """report.json as a dict; shown as the per-layer table."""

    def __str__(self) -> str:
        from .tools.report import format_table

        return format_table(self)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython / Jupyter
        p.text(str(self))


class CompiledModel:
    """A compiled model: its plan and the directory holding the generated C."""

    def __init__(self, plan: Plan, out: Path):
        self.plan = plan
        self.out = Path(out)
        self.name = plan.name
        self.profile: list[dict] | None = None  # per layer, after run(..., profile=True)
        self._flash: dict | None = None

    def __repr__(self) -> str:
        return (f"<mcuforge model '{self.name}' in {self.out}: arena {self.arena_size} B, SRAM {self.sram_bytes} B, "
                f"weights {self.weight_bytes} B, {self.plan.macs:,} MACs, {self.plan.config.kernels} kernels>")

    @property
    def arena_size(self) -> int:
        """Bytes of the one static arena (<NAME>_ARENA_SIZE)."""
        return self.plan.arena_size

    @property
    def sram_bytes(self) -> int:
        """Arena + other RAM the generated code defines (trained state)."""
        return self.plan.sram_bytes()

    @property
    def weight_bytes(self) -> int:
        return self.plan.weight_bytes

    @property
    def flash_bytes(self) -> int:
        """Flash of the model as a Cortex-M4 build links it (weights + model and kernel code +
        constant tables, the rule of ``check-elf --model``): the generated C is cross-compiled
        at -Os with arm-none-eabi-gcc on first use."""
        return self.elf_memory()["flash_bytes"]

    def elf_memory(self, target: str = "qemu-cortex-m4", opt: str = "-Os") -> dict:
        """The model's memory read back from a linked image (check-elf's breakdown)."""
        from .tools import elfcheck, qemu

        if self._flash is None or self._flash.get("_key") != (target, opt):
            with tempfile.TemporaryDirectory(prefix="mcuforge-elf-") as tmp:
                elf = qemu.build(self.plan, self.out, Path(tmp), target, opt=opt)
                self._flash = {**elfcheck.model_breakdown(elfcheck.read_elf(elf), self.name), "_key": (target, opt)}
        return {k: v for k, v in self._flash.items() if k != "_key"}

    def report(self) -> Report:
        """report.json: per layer MACs, live bytes, arena offsets, kernels; printed as a table."""
        from .codegen.report import build_report

        return Report(build_report(self.plan))

    def _inputs(self, x: Any) -> np.ndarray:
        from .tools.hostrun import prepare_input

        return prepare_input(x, self.plan, f"{self.name}: input")

    def run(self, x: Any, target: str = "host", profile: bool = False, opt: str = "-O2") -> np.ndarray:
        """Run the generated C on input(s) `x` (the source model's layout; float is quantized
        with the input scale, int8 (int16 for a 16x8 model) taken as it is; one sample or a batch (N, ...)).
        target: "host" (built with this machine's cc) or a QEMU target ("qemu-cortex-m4",
        "qemu-cortex-m7", ...). profile=True (QEMU only) fills `self.profile` per layer: MACs,
        instructions and, on qemu-cortex-m4, estimated cycles of the first input (docs/speed.md).
        Returns the output(s) (int8, or int16 for a 16x8 model) in the source layout, batch first."""
        from .quantize import to_source_layout

        xs = self._inputs(x)
        with tempfile.TemporaryDirectory(prefix="mcuforge-run-") as tmp:
            if target == "host":
                if profile:
                    raise BadInput("run(profile=True) needs a QEMU target, e.g. target=\"qemu-cortex-m4\"")
                from .tools import hostrun

                exe = hostrun.build(self.plan, self.out, Path(tmp), opt=opt)
                outs = hostrun.run(self.plan, exe, xs)
            else:
                from .tools import qemu

                if target not in qemu.TARGETS:
                    raise BadInput(f"run: unknown target '{target}'; one of host, {', '.join(sorted(qemu.TARGETS))}")
                elf = qemu.build(self.plan, self.out, Path(tmp), target, opt=opt)
                outs, _stats = qemu.run(self.plan, elf, xs, target)
                if profile:  # the first input traced, priced on Cortex-M4 (docs/speed.md)
                    from .tools import cycles

                    traced = cycles.run(self.plan, self.out, xs[:1], target, opt=opt, profile=True)
                    self.profile, _ = cycles.profile_table(self.plan, traced)
        ys = [to_source_layout(self.plan.graph, o) for o in outs]
        return ys[0] if len(ys) == 1 else ys

    def reference(self, x: Any) -> np.ndarray:
        """The NumPy reference's output for `x` (what the C must equal, bit for bit)."""
        from . import reference
        from .quantize import to_source_layout

        xs = self._inputs(x)
        results = [reference.run(self.plan, xi) for xi in xs]
        ys = [to_source_layout(self.plan.graph, np.concatenate([r.outputs[o] for r in results]))
              for o in self.plan.graph.outputs]
        return ys[0] if len(ys) == 1 else ys

    def plot_memory(self, path: str | Path | None = None) -> Path:
        """PNG of live activation bytes per layer against the arena (default: DIR/memory.png)."""
        from .tools.report import plot_memory

        return plot_memory(self.report(), Path(path) if path else self.out / "memory.png")

    def trainer(self) -> "TrainingStep":
        """A handle on the training step of a training build (--training bias|sparse|full)."""
        if self.plan.training is None:
            raise BadInput(f"{self.name}: compiled without training; compile with training=\"bias\"|\"sparse\"|"
                           "\"full\" for a training step")
        return TrainingStep(self)


class TrainingStep:
    """The model's training step, executed by the NumPy reference (bit-exact with
    `<name>_train_step` in the generated C): `step(x, label)` returns the loss the C
    reports, `predict(x)` runs inference with what was learned, `state()` the bytes of
    `<name>_train_state()`."""

    def __init__(self, model: CompiledModel):
        from .reference import training

        self.model = model
        self._training = training
        self._state = training.TrainState.initial(model.plan)

    def step(self, x: Any, label: int) -> float:
        xs = self.model._inputs(x)
        if len(xs) != 1:
            raise BadInput("TrainingStep.step takes one sample; call it once per sample")
        return float(self._training.train_step(self.model.plan, self._state, xs[0], int(label)))

    def predict(self, x: Any) -> np.ndarray:
        from .quantize import to_source_layout

        xs = self.model._inputs(x)
        out = np.stack([self._training.infer(self.model.plan, self._state, xi) for xi in xs])
        g = self.model.plan.graph
        return to_source_layout(g, out.reshape((len(xs),) + g.tensors[self.model.plan.outputs[0]].shape[1:]))

    def state(self) -> bytes:
        return self._state.to_bytes(self.model.plan)
