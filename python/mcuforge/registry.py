"""One registry for every extension point.

Frontends, passes and C backends are registered through Python entry points
(``pyproject.toml``: groups ``mcuforge.frontends``, ``mcuforge.passes``,
``mcuforge.backends``). A third-party package adds one by declaring an entry
point in the same group; nothing in mcuforge has to be edited.

Each entry point names an object of the matching dataclass below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from .ir import Graph, McuforgeError

GROUPS = {
    "frontend": "mcuforge.frontends",
    "pass": "mcuforge.passes",
    "backend": "mcuforge.backends",
}

# Built-ins, so that a source checkout works before `pip install -e .` has
# written entry-point metadata. Entry points of the same name override them.
_BUILTIN = {
    "frontend": {
        "onnx": "mcuforge.frontends.onnx:FRONTEND",
        "torch": "mcuforge.frontends.torch:FRONTEND",
        "tflite": "mcuforge.frontends.tflite:FRONTEND",
    },
    "pass": {"canonicalize": "mcuforge.passes.canonicalize:PASS"},
    "backend": {"portable": "mcuforge.codegen.portable:BACKEND", "arm_dsp": "mcuforge.codegen.arm_dsp_backend:BACKEND"},
}


@dataclass(frozen=True)
class Frontend:
    name: str
    suffixes: tuple[str, ...]  # file name endings this frontend reads, e.g. (".onnx",)
    load: Callable[..., Graph]  # load(path: Path, **options) -> float or pre-quantized Graph
    sniff: Callable[[bytes], bool] | None = None  # optional: recognise a file by its first bytes


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Graph], Graph]
    order: int = 100  # passes run in ascending order


def portable_scratch_size(step) -> int:
    """Scratch bytes the portable kernel of a step needs (mcuforge.kernels.SCRATCH_SIZE)."""
    from .kernels import SCRATCH_SIZE

    fn = SCRATCH_SIZE.get(step.kernel)
    return int(fn(step.params)) if fn else 0


@dataclass(frozen=True)
class Backend:
    name: str
    generate: Callable[..., Any]  # generate(plan, outdir: Path) -> list of written files
    description: str = ""
    runtime_sources: Callable[..., list[str]] = field(default=lambda plan: [])  # C files a plan needs
    # scratch_size(step) -> bytes of arena scratch the backend's kernel for that step needs; the
    # memory planner places it like every other buffer (called after the in-place decision)
    scratch_size: Callable[..., int] = portable_scratch_size
    # kernel_of(plan, step) -> (C function, True when it is the portable kernel: no variant)
    kernel_of: Callable[..., tuple[str, bool]] = field(default=lambda plan, step: (f"mcf_{step.kernel}", True))
    # choose_variants(graph, steps, aliases, allow_inplace, config, plan_steps) -> (steps, MemoryPlan,
    # {layer: variant key}, {layer: why}, SRAM limit): a layer plan with each layer's variant chosen (None: none)
    choose_variants: Callable[..., Any] | None = None


def backend_for(kernels: str) -> Backend:
    """The C backend of a `--kernels` choice ("arm-dsp" -> backend "arm_dsp")."""
    name = kernels.replace("-", "_")
    if name not in entries("backend"):
        known = ", ".join(sorted(k.replace("_", "-") for k in entries("backend")))
        raise McuforgeError(f"--kernels {kernels}: no C backend of that name is installed (available: {known})")
    return get("backend", name)


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    import importlib

    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def entries(kind: str) -> dict[str, str]:
    """name -> 'module:attr' for one kind, built-ins overridden by entry points."""
    found = dict(_BUILTIN[kind])
    try:
        for ep in metadata.entry_points(group=GROUPS[kind]):
            found[ep.name] = ep.value
    except Exception:  # pragma: no cover - broken metadata must not break the CLI
        pass
    return found


def get(kind: str, name: str) -> Any:
    specs = entries(kind)
    if name not in specs:
        known = ", ".join(sorted(specs))
        raise McuforgeError(f"unknown {kind} '{name}' (known: {known})")
    return _load(specs[name])


def all_of(kind: str) -> list[Any]:
    out = []
    for name in sorted(entries(kind)):
        try:
            out.append(get(kind, name))
        except ImportError:
            continue  # an optional dependency is missing; that plugin is unavailable
    return out


def frontend_for(path: Path) -> Frontend:
    """The frontend that reads `path`, chosen by file name ending."""
    lower = path.name.lower()
    for fe in all_of("frontend"):
        if any(lower.endswith(s) for s in fe.suffixes):
            return fe
    suffixes = sorted({s for fe in all_of("frontend") for s in fe.suffixes})
    raise McuforgeError(f"{path}: unknown model format (supported: {', '.join(suffixes)})")


def passes() -> list[Pass]:
    return sorted(all_of("pass"), key=lambda p: (p.order, p.name))
