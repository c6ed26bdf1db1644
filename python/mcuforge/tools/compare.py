"""Layer-by-layer comparison of a compiled TFLite model with an oracle.

``mcuforge compare MODEL [--input X.npy] [--oracle tflm|litert]`` runs the
Plan's NumPy reference (which equals the generated C byte for byte) and the
oracle on the same int8 inputs, and compares every layer's output tensor:

* ``tflm`` (default): the ``tflite-micro`` Python interpreter, TFLM's
  reference kernels, with ``kPreserveAllTensors`` so every intermediate
  tensor can be read after ``invoke`` -- the oracle "bit-exact" refers to;
* ``litert``: the ``ai-edge-litert`` interpreter with
  ``experimental_preserve_all_tensors=True`` (its builtin kernels without the
  XNNPACK delegate). It differs from TFLM in places (fully-connected
  requantization rounds once there), which this shows layer by layer.

A layer of the plan is matched to the oracle through its output tensor:
the TFLite frontend names IR tensors after the file's tensors
(``frontends.tflite.tensor_names``). Tensors the compiler added (a softmax
requantization, say) have no oracle value and are shown as not compared.

Each layer is compared on its own output as the whole chain computed it, so
the first layer that differs is where the numerics part; later layers may
differ only because their inputs already did.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import McuforgeError
from ..plan import Plan

ORACLES = ("tflm", "litert")
ORACLE_NAMES = {
    "tflm": "TFLM reference kernels (tflite-micro interpreter)",
    "litert": "LiteRT builtin kernels (ai-edge-litert interpreter, no delegate)",
}


@dataclass
class LayerDiff:
    index: int  # step index in the plan
    name: str  # node name, e.g. CONV_2D_3 (TFLite operator 3)
    op: str  # IR op
    tensor: str  # the output tensor compared
    values: int  # values compared (all inputs)
    max_abs_diff: int = 0
    differing: int = 0
    compared: bool = True  # False: the oracle has no such tensor

    @property
    def differs(self) -> bool:
        return self.compared and self.differing > 0


@dataclass
class CompareResult:
    model: str
    oracle: str
    inputs: int
    layers: list[LayerDiff] = field(default_factory=list)

    @property
    def first_difference(self) -> LayerDiff | None:
        return next((layer for layer in self.layers if layer.differs), None)

    @property
    def identical(self) -> bool:
        return self.first_difference is None


# ---- oracles ----------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what native code prints on file descriptor 2 (interpreter banners)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _oracle_values(model_bytes: bytes, xs: np.ndarray, indices: list[int], oracle: str,
                   input_index: int) -> list[dict[int, np.ndarray]]:
    """Per input: TFLite tensor index -> the oracle's int8 values (flat)."""
    if oracle == "tflm":
        return _tflm_values(model_bytes, xs, indices)
    if oracle == "litert":
        return _litert_values(model_bytes, xs, indices, input_index)
    raise McuforgeError(f"--oracle: '{oracle}' is not one of {', '.join(ORACLES)}")


def _tflm_values(model_bytes: bytes, xs: np.ndarray, indices: list[int]) -> list[dict[int, np.ndarray]]:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise McuforgeError("--oracle tflm needs the tflite-micro package (pip install tflite-micro)") from None
    from ..frontends.tflite import read_model

    model = read_model(model_bytes)
    activations = sum(int(np.prod(t.shape or (1,))) * 4 for t in model.tensors if t.data is None)
    arena = 2 * activations + (1 << 20)  # every tensor is preserved, nothing shares memory
    try:
        interpreter = runtime.Interpreter.from_bytes(
            model_bytes, arena_size=arena, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    except Exception as err:
        raise McuforgeError(f"the TFLM interpreter cannot load the model: {err}") from None
    out = []
    for x in xs:
        interpreter.set_input(np.ascontiguousarray(x[None]), 0)
        interpreter.invoke()
        out.append({k: np.asarray(interpreter.GetTensor(k, 0)["tensor_data"]).reshape(-1).copy()
                    for k in indices})
    return out


def _litert_values(model_bytes: bytes, xs: np.ndarray, indices: list[int],
                   input_index: int) -> list[dict[int, np.ndarray]]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise McuforgeError("--oracle litert needs the ai-edge-litert package (pip install ai-edge-litert)") from None
    from ai_edge_litert.interpreter import OpResolverType

    try:
        with warnings.catch_warnings(), _quiet_stderr():  # "intended for debugging" / delegate banners
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True,
                                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            interpreter.allocate_tensors()
    except Exception as err:
        raise McuforgeError(f"the LiteRT interpreter cannot load the model: {err}") from None
    out = []
    for x in xs:
        interpreter.set_tensor(input_index, np.ascontiguousarray(x[None]))
        interpreter.invoke()
        out.append({k: np.asarray(interpreter.get_tensor(k)).reshape(-1).copy() for k in indices})
    return out


# ---- comparison ---------------------------------------------------------------


def compare_plan(plan: Plan, model_bytes: bytes, xs: np.ndarray, oracle: str = "tflm") -> CompareResult:
    """Compare every step of `plan` with `oracle` on int8 inputs `xs` (N, ...) in
    the IR layout. `model_bytes` is the .tflite file the plan was compiled from."""
    from .. import reference
    from ..frontends.tflite import read_model, tensor_names

    if oracle not in ORACLES:
        raise McuforgeError(f"--oracle: '{oracle}' is not one of {', '.join(ORACLES)}")
    model = read_model(model_bytes)
    index_of = {name: k for k, name in enumerate(tensor_names(model.tensors))}
    in_shape = plan.graph.tensors[plan.input].shape
    xs = np.asarray(xs, dtype=np.int8).reshape((-1,) + tuple(in_shape[1:]))
    wanted = sorted({index_of[s.outputs[0]] for s in plan.steps if s.outputs[0] in index_of})
    input_index = model.inputs[0]
    oracle_values = _oracle_values(model_bytes, xs, wanted, oracle, input_index)

    result = CompareResult(model=Path(plan.graph.source).name or plan.name, oracle=oracle, inputs=len(xs))
    for step in plan.steps:
        out = step.outputs[0]
        size = plan.graph.tensors[out].size
        result.layers.append(LayerDiff(step.index, step.name, step.node.op, out, size * len(xs),
                                       compared=out in index_of))
    for x, theirs in zip(xs, oracle_values):
        ours = reference.run(plan, x, keep_intermediates=True).intermediates
        for layer in result.layers:
            if not layer.compared:
                continue
            mine = ours[layer.tensor].reshape(-1).astype(np.int32)
            other = theirs[index_of[layer.tensor]].astype(np.int32)
            if mine.size != other.size:
                raise McuforgeError(f"layer {layer.index} {layer.name}: {mine.size} values here, "
                                    f"{other.size} in the oracle; the plan was not compiled from this model")
            diff = np.abs(mine - other)
            layer.max_abs_diff = max(layer.max_abs_diff, int(diff.max(initial=0)))
            layer.differing += int(np.count_nonzero(diff))
    return result


def format_table(result: CompareResult) -> str:
    rows = [("#", "layer", "op", "values", "max |diff|", "differing")]
    for layer in result.layers:
        if layer.compared:
            rows.append((str(layer.index), layer.name, layer.op, f"{layer.values:,}", str(layer.max_abs_diff),
                         f"{layer.differing:,}"))
        else:
            rows.append((str(layer.index), layer.name, layer.op, f"{layer.values:,}", "-", "not compared"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4, 5}
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    first = result.first_difference
    compared = sum(1 for layer in result.layers if layer.compared)
    if first is None:
        lines.append(f"no difference: all {compared} compared layers equal {result.oracle.upper()} "
                     f"bit for bit on {result.inputs} input(s)")
    else:
        lines.append(f"first differing layer: {first.index} {first.name} ({first.op}): {first.differing:,} of "
                     f"{first.values:,} values differ, max |diff| {first.max_abs_diff}")
    return "\n".join(lines)


# ---- the CLI verb ---------------------------------------------------------------


def load_plan(model: Path) -> tuple[Plan, bytes]:
    """A .tflite file (compiled here, layer by layer) or an output directory
    of ``mcuforge compile`` whose source is a .tflite file."""
    import hashlib

    from ..config import BuildConfig
    from ..pipeline import plan_model

    model = Path(model)
    if model.is_dir():
        plan = Plan.load(model)
        source = Path(plan.graph.source) if plan.graph.source else None
        if plan.graph.source_format != "tflite" or source is None:
            raise McuforgeError(f"{model}: compiled from a {plan.graph.source_format or 'non-TFLite'} model; "
                                f"compare needs a model compiled from a .tflite file (the oracle runs it)")
        if not source.is_file():
            raise McuforgeError(f"{model}: its source model {source} is gone; pass the .tflite file instead")
        data = source.read_bytes()
        if plan.graph.source_hash and hashlib.sha256(data).hexdigest() != plan.graph.source_hash:
            raise McuforgeError(f"{model}: {source} changed since it was compiled; compile it again")
        if plan.schedule != "layer":
            raise McuforgeError(f"{model}: compare works on layer-by-layer plans, this one is '{plan.schedule}'; "
                                f"compare the .tflite file instead")
        return plan, data
    if not model.is_file():
        raise McuforgeError(f"{model}: model file not found")
    if not model.name.lower().endswith(".tflite"):
        raise McuforgeError(f"{model}: compare needs a .tflite model (the oracle runs it) or an output "
                            f"directory compiled from one")
    plan = plan_model(model, BuildConfig(schedule="layer"))
    return plan, model.read_bytes()


def random_inputs(plan: Plan, count: int = 1, seed: int = 0) -> np.ndarray:
    shape = plan.graph.tensors[plan.input].shape
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count,) + tuple(shape[1:]), dtype=np.int16).astype(np.int8)


def main_compare(args) -> int:
    from .hostrun import load_input

    plan, data = load_plan(Path(args.model))
    if args.input:
        xs = load_input(Path(args.input), plan)
        what = f"{len(xs)} input(s) from {args.input}"
    else:
        xs = random_inputs(plan, 1, args.seed)
        what = f"1 random int8 input (seed {args.seed})"
    result = compare_plan(plan, data, xs, args.oracle)
    print(f"compare {os.path.basename(plan.graph.source)} with {ORACLE_NAMES[args.oracle]} on {what}")
    print(format_table(result))
    return 0 if result.identical else 4
