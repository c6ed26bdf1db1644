"""PyTorch frontend: an ``nn.Module`` or a ``torch.export`` archive -> Graph.

Both go through ONNX and reuse the ONNX frontend, so PyTorch models get the
same op coverage, layout handling and error messages:

* ``from_torch(module, example_input)`` exports with the TorchScript-based
  exporter (``torch.onnx.export(..., dynamo=False)``, opset 17). It is the
  reliable choice here: it takes tens of milliseconds instead of seconds,
  folds BatchNorm into the conv in eval mode and writes plain Conv/Gemm
  graphs. If it fails (a model it cannot trace), the torch.export-based
  exporter (``dynamo=True``, opset 18) is tried. ``exporter="dynamo"`` picks
  the latter directly.
* ``.pt2`` files saved by ``torch.export.save`` hold an ExportedProgram; it
  is exported with the torch.export-based exporter, the only one that takes
  an ExportedProgram, with the program's own example inputs.

torch is imported only when one of these is called.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..ir import Graph, McuforgeError
from ..registry import Frontend
from . import c_identifier
from . import onnx as onnx_frontend

LEGACY_OPSET = 17
DYNAMO_OPSET = 18


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise McuforgeError("PyTorch is not installed: pip install 'mcuforge[torch]' "
                            "(or export the model to ONNX and compile the .onnx file)") from None
    return torch


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation and info logs."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _eval_mode(module: Any) -> Iterator[None]:
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def _names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def export_legacy(module: Any, args: tuple[Any, ...], n_outputs: int) -> bytes:
    torch = _import_torch()
    buffer = io.BytesIO()
    with _quiet():
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=LEGACY_OPSET,
                          do_constant_folding=True, input_names=_names("input", len(args)),
                          output_names=_names("output", n_outputs))
    return buffer.getvalue()


def _export_dynamo(model: Any, args: tuple[Any, ...] | None, n_outputs: int | None) -> bytes:
    torch = _import_torch()
    kwargs: dict[str, Any] = {"dynamo": True, "opset_version": DYNAMO_OPSET, "optimize": True}
    if args is not None:
        kwargs["input_names"] = _names("input", len(args))
    if n_outputs is not None:
        kwargs["output_names"] = _names("output", n_outputs)
    with _quiet():
        program = torch.onnx.export(model, args, **kwargs)
    return program.model_proto.SerializeToString()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def _check_example(args: tuple[Any, ...], what: str) -> None:
    torch = _import_torch()
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise McuforgeError(f"{what}: example input {i} is a {type(a).__name__}, expected a torch.Tensor")
        if a.dim() < 2 or a.shape[0] != 1:
            raise McuforgeError(f"{what}: example input {i} has shape {tuple(a.shape)}; mcuforge compiles "
                                f"batch-1 models: pass an input with batch size 1, e.g. "
                                f"{(1,) + tuple(a.shape[1:]) if a.dim() >= 2 else (1,) + tuple(a.shape)}")


def from_torch(module: Any, example_input: Any, name: str = "model", *, exporter: str = "auto") -> Graph:
    """Convert a PyTorch module to a float Graph (channels-last IR).

    `example_input` is an NCHW (or (1, N)) tensor of batch 1, or a tuple of
    them for several inputs. `exporter` is "auto" (TorchScript exporter,
    falling back to torch.export), "legacy" or "dynamo". The module is
    exported in eval mode; its own training flags are restored afterwards.
    """
    torch = _import_torch()
    label = f"torch module {type(module).__name__}"
    if not isinstance(module, torch.nn.Module):
        raise McuforgeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    _check_example(args, label)
    if exporter not in ("auto", "legacy", "dynamo"):
        raise McuforgeError(f"from_torch: unknown exporter '{exporter}' (auto, legacy, dynamo)")
    with torch.no_grad(), _eval_mode(module):
        try:
            out = module(*args)
        except Exception as err:
            raise McuforgeError(f"{label}: running it on the example input failed ({_first_line(err)})") from None
        n_outputs = len(out) if isinstance(out, (tuple, list)) else 1
        failures = []
        data = None
        for kind in (("legacy", "dynamo") if exporter == "auto" else (exporter,)):
            try:
                data = (export_legacy(module, args, n_outputs) if kind == "legacy"
                        else _export_dynamo(module, args, n_outputs))
                break
            except Exception as err:
                failures.append(f"{kind} exporter: {_first_line(err)}")
    if data is None:
        raise McuforgeError(f"{label}: cannot export to ONNX ({'; '.join(failures)})")
    graph = onnx_frontend.load_bytes(data, source=label, name=name, source_format="torch")
    graph.source = ""
    return graph


def _example_args(program: Any, path: Path) -> tuple[Any, ...]:
    """The example inputs stored with an ExportedProgram, checked static."""
    torch = _import_torch()
    user_inputs = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    for name in user_inputs:
        val = placeholders[name].meta.get("val") if name in placeholders else None
        shape = getattr(val, "shape", None)
        if shape is not None and any(not isinstance(d, int) for d in shape):
            shown = "(" + ", ".join(str(d) for d in shape) + ")"
            raise McuforgeError(
                f"{path}: input '{name}' has a dynamic shape {shown}; mcuforge needs static shapes with batch 1: "
                f"export with torch.export.export(model, (example,)) without dynamic_shapes")
    example = getattr(program, "example_inputs", None)
    if example is not None:
        args, kwargs = example
        if kwargs:
            raise McuforgeError(f"{path}: the program takes keyword inputs ({', '.join(kwargs)}); "
                                f"export it with positional inputs only")
        return tuple(args)
    args = []
    for name in user_inputs:
        val = placeholders[name].meta.get("val")
        if val is None:
            raise McuforgeError(f"{path}: no example input or shape is stored for input '{name}'; "
                                f"save the program made by torch.export.export(model, (example,))")
        args.append(torch.zeros(tuple(val.shape), dtype=val.dtype))
    return tuple(args)


def load(path: str | Path, **options: Any) -> Graph:
    """Read a ``torch.export.save``d ExportedProgram (``.pt2``) into a Graph."""
    path = Path(path)
    if not path.exists():
        raise McuforgeError(f"{path}: no such file")
    if path.is_dir():
        raise McuforgeError(f"{path}: is a directory, not a .pt2 file")
    raw = path.read_bytes()
    torch = _import_torch()
    try:
        with _quiet():
            program = torch.export.load(str(path))
    except Exception as err:
        raise McuforgeError(f"{path}: not a valid torch.export archive ({_first_line(err)})") from None
    args = _example_args(program, path)
    _check_example(args, str(path))
    try:
        data = _export_dynamo(program, args, None)
    except Exception as err:
        raise McuforgeError(f"{path}: cannot export the program to ONNX ({_first_line(err)})") from None
    name = options.get("name") or c_identifier(path.stem)
    graph = onnx_frontend.load_bytes(data, source=str(path), name=name, source_format="torch",
                                     input_shapes=options.get("input_shapes"))
    graph.source_hash = hashlib.sha256(raw).hexdigest()
    return graph


FRONTEND = Frontend(name="torch", suffixes=(".pt2",), load=load)
