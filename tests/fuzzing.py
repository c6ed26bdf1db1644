"""Fuzzing mcuforge's model readers and the whole ``compile`` path.

Three targets:

* ``onnx``    -- ``frontends.onnx.load_bytes`` on the mutated bytes;
* ``tflite``  -- ``frontends.tflite.load_bytes``;
* ``compile`` -- ``mcuforge compile FILE -o DIR`` (the CLI's ``main``, in
  process) on a mutated ``.onnx`` or ``.tflite`` file.

The invariant: the frontends return a Graph or raise ``McuforgeError``;
``compile`` exits 0, 2 or 3 without a traceback or an internal error; after
a failure neither the output directory nor a temporary sibling exists, after
a success every output file is there and ``report.json`` parses; every input
finishes within ``--input-timeout`` seconds, and the process runs under an
address-space limit (``--memory-mb``), so a model claiming a huge tensor that
got allocated would end in MemoryError, an internal error, i.e. a crash.
With ``--sanitize-every N`` every N-th successful compile is also built with
``-fsanitize=address,undefined`` and run on one input.

Mutations are drawn by Hypothesis strategies from each input's random bytes
(``fuzz_one_input``, the same way a coverage-guided fuzzer feeds it):
byte-level ones (bit flips, interesting integers, truncation, deletion,
duplication, splicing two seeds) and structural ones that edit the ONNX
protobuf or the TFLite flatbuffer (dimensions, scales, zero points, weight
lengths, attributes and options, tensor references, cycles, duplicate and
hostile names, types).

Seeds: the corpus that ``tests/make_fuzz_corpus.py`` builds (no model file
is committed): ``seeds/`` (zoo models as ONNX, two of them QDQ quantized,
small TFLite models) and the hand-made hostile files of ``hostile/``; the
saved crashes, rebuilt from their recipes in ``tests/fuzz_corpus/crashes``;
and the MLPerf Tiny models from ``../shared/models`` when present.

A saved crash is a recipe, ``<target>-<digest>.<fmt>.json``: the corpus file
the input was mutated from (``from``, with its SHA-256), the byte edits that
turn it into the input (``edits``: at an offset of the original, delete some
bytes and insert bytes, given in hex, zlib-compressed in base64, or as a range
of a corpus file to copy), and the SHA-256 of the result; ``rebuild_crash``
gives the input back, byte for byte.

    python tests/fuzzing.py --seconds 60 [--target onnx,tflite,compile] [--save-crashes DIR] [--corpus DIR]

first runs every corpus file unmutated through each target (so the hostile
files, a 10^12-element tensor among them, go through under the same
address-space limit), then fuzzes for the rest of the time, and prints a summary (inputs tried, outcomes, distinct crashes) and exits 1 when
an input broke the invariant; ``--save-crashes`` writes each distinct crash
(one recipe per signature) for the suite to replay. Without ``--corpus`` the
corpus is first built into a temporary directory (a few seconds).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "fuzz_corpus"  # committed text: expected.json, manifest.json, crash recipes
CRASHES = CORPUS / "crashes"
MLPERF_DIR = HERE.parents[1] / "shared" / "models"
TARGETS = ("onnx", "tflite", "compile")
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite"}

INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**32 - 1, 10**12, -10**12,
                    2**63 - 1, 127, -128, 128, -129]
INTERESTING_DIMS = [0, -1, -7, 1, 2, 3, 65535, 2**31 - 1, 10**6, 10**12]
INTERESTING_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, -1.0, 1e-45, 1e-30, 1e30, 3.4e38,
                      1.0, 0.5, 1e-8]
HOSTILE_NAMES = ["*/ int x; /*", "", "a\nb", "??/", "1x", "int", "\u202e", "x" * 500, "a b", "%s%n", "../x",
                 "conv/../..//", "main"]
HOSTILE_BYTES = [b"\xff\xff\xff\x7f", b"\xc3\x28", b"\x00", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
NAME_MARKER = "MCFZMARK"
# compile options drawn per input: the layer planner, both patch schedules, auto under a tight budget
COMPILE_OPTIONS = [[], [], ["--schedule", "patch"], ["--schedule", "patch", "--input-stream"],
                   ["--schedule", "auto", "--sram-budget", "2K"]]


class InputTimeout(BaseException):
    """One input took longer than --input-timeout (BaseException: nothing in mcuforge may catch it)."""


# ------------------------------------------------------------------ seeds


def format_of(data: bytes) -> str:
    return "tflite" if data[4:8] == b"TFL3" else "onnx"


def build_corpus(dest: Path) -> Path:
    """The seeds and hostile files, built by tests/make_fuzz_corpus.py into `dest` in a child process
    (torch and onnxruntime stay out of this one, and out of its address-space limit)."""
    dest = Path(dest)
    res = subprocess.run([sys.executable, str(HERE / "make_fuzz_corpus.py"), str(dest)], capture_output=True,
                         text=True, timeout=900)
    if res.returncode:
        raise RuntimeError(f"building the fuzzing corpus failed:\n{res.stdout}{res.stderr}")
    return dest


def load_seeds(corpus: Path, log=print) -> dict[str, list[tuple[str, bytes]]]:
    """{format: [(name, bytes)]}: the built corpus in `corpus`, the saved crashes and the MLPerf models."""
    seeds: dict[str, list[tuple[str, bytes]]] = {"onnx": [], "tflite": []}
    for sub in ("seeds", "hostile"):
        for f in sorted((Path(corpus) / sub).glob("*")):
            if f.suffix in (".onnx", ".tflite"):
                seeds[f.suffix[1:]].append((f"{sub}/{f.name}", f.read_bytes()))
    for name in crash_names():
        try:
            data = rebuild_crash(name, corpus)
        except RecipeError as err:
            log(f"fuzz: saved crash {name} left out: {err}")
            continue
        seeds[Path(name).suffix[1:]].append((f"crashes/{name}", data))
    mlperf = sorted(MLPERF_DIR.glob("*.tflite")) if MLPERF_DIR.is_dir() else []
    if mlperf:
        seeds["tflite"] += [(f"mlperf/{f.name}", f.read_bytes()) for f in mlperf]
    else:
        log(f"fuzz: MLPerf Tiny seeds skipped: no .tflite files in {MLPERF_DIR} (see ../shared/models/README.md)")
    return seeds


# ------------------------------------------------------------------ crash recipes


class RecipeError(Exception):
    """A saved crash cannot be rebuilt; `base_changed`: its corpus file now has other bytes."""

    def __init__(self, message: str, base_changed: bool = False, missing: bool = False):
        super().__init__(message)
        self.base_changed, self.missing = base_changed, missing


def crash_names(crashes: Path = CRASHES) -> list[str]:
    return sorted(f.name[:-len(".json")] for f in crashes.glob("*.json"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunks(data: bytes) -> list[bytes]:
    """`data` cut where its last four bytes hash to 0 mod 64 (16 bytes apart at least): the cuts depend on
    the bytes around them, so two files that differ in a few places fall into the same chunks elsewhere."""
    import numpy as np

    x = np.frombuffer(data, np.uint8).astype(np.uint32)
    h = x.copy()
    for k, mul in ((1, 2654435761), (2, 40503), (3, 2246822519)):
        h[k:] = h[k:] * np.uint32(31) + x[:-k] * np.uint32(mul)
    edges = [0]
    for c in (np.nonzero((h >> np.uint32(11)) % np.uint32(64) == 0)[0] + 1).tolist():
        if c - edges[-1] >= 16 and c < len(data):  # at least 16 bytes (a run of one value is no chunk each)
            edges.append(c)
    edges.append(len(data))
    return [data[i:j] for i, j in zip(edges, edges[1:]) if j > i]


def _differing_runs(a: bytes, b: bytes, gap: int = 8, coarse: bool = True) -> list[tuple[int, int, int, int]]:
    """(i1, i2, j1, j2) replacements turning a into b, runs closer than `gap` equal bytes merged."""
    import difflib

    import numpy as np

    if len(a) == len(b):
        ops = [(i, i + 1, i, i + 1) for i in np.nonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8))[0]
               .tolist()]
    elif max(len(a), len(b)) <= 512:  # (difflib on bytes takes time in proportion to len(a) * len(b))
        ops = [op[1:] for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
               if op[0] != "equal"]
    elif coarse:  # align chunks first, then the bytes of the chunks that differ
        ca, cb = _chunks(a), _chunks(b)
        pa = [0, *np.cumsum([len(c) for c in ca]).tolist()]
        pb = [0, *np.cumsum([len(c) for c in cb]).tolist()]
        ops = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ca, cb).get_opcodes():
            if tag != "equal":
                ops += [(pa[i1] + x1, pa[i1] + x2, pb[j1] + y1, pb[j1] + y2) for x1, x2, y1, y2 in
                        _differing_runs(a[pa[i1]:pa[i2]], b[pb[j1]:pb[j2]], gap, coarse=False)]
    else:
        ops = [(0, len(a), 0, len(b))]
    merged: list[tuple[int, int, int, int]] = []
    for op in ops:
        if merged and op[0] - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], op[1], merged[-1][2], op[3])
        else:
            merged.append(op)
    return merged


def diff_edits(base: bytes, data: bytes, sources: dict[str, bytes]) -> list[dict]:
    """The edits that turn `base` into `data`; an inserted run of 32 bytes or more that some file of
    `sources` holds (a splice, a duplication) is a copy of that range rather than hex."""
    n = min(len(base), len(data))
    p = 0
    while p < n and base[p] == data[p]:
        p += 1
    s = 0
    while s < n - p and base[-1 - s] == data[-1 - s]:
        s += 1
    edits = []
    for i1, i2, j1, j2 in _differing_runs(base[p:len(base) - s], data[p:len(data) - s]):
        edit: dict = {"at": p + i1, "delete": i2 - i1}
        piece = data[p + j1:p + j2]
        where = next(((name, src.find(piece)) for name, src in sources.items()
                      if len(piece) >= 32 and piece in src), None)
        packed = base64.b64encode(zlib.compress(piece, 9)).decode()
        if where:
            edit["copy"] = {"from": where[0], "at": where[1], "length": len(piece)}
        elif len(packed) < len(piece) * 2 - 64:  # e.g. a tensor of extreme values: zlib, base64
            edit["insert_zlib"] = packed
        elif piece:
            edit["insert"] = piece.hex()
        edits.append(edit)
    return edits


def apply_edits(base: bytes, edits: list[dict], resolve) -> bytes:
    out, cur = bytearray(), 0
    for e in edits:
        at, delete = int(e["at"]), int(e["delete"])
        if at < cur or at + delete > len(base):
            raise RecipeError(f"edit at {at} (delete {delete}) outside the {len(base)} bytes or out of order")
        out += base[cur:at]
        if "copy" in e:
            c = e["copy"]
            piece = resolve(c["from"])[c["at"]:c["at"] + c["length"]]
            if len(piece) != c["length"]:
                raise RecipeError(f"{c['from']} holds no {c['length']} bytes at {c['at']}")
            out += piece
        elif "insert_zlib" in e:
            out += zlib.decompress(base64.b64decode(e["insert_zlib"]))
        else:
            out += bytes.fromhex(e.get("insert", ""))
        cur = at + delete
    return bytes(out + base[cur:])


def corpus_file(name: str, corpus: Path, _depth: int = 0) -> bytes:
    """A file the fuzzer draws from by its name: seeds/…, hostile/… (built into `corpus`), crashes/… (a
    recipe of tests/fuzz_corpus/crashes, rebuilt) or mlperf/… (../shared/models)."""
    sub, _, rest = name.partition("/")
    if sub == "crashes":
        return rebuild_crash(rest, corpus, CRASHES, _depth + 1)
    path = MLPERF_DIR / rest if sub == "mlperf" else Path(corpus) / sub / rest
    if sub not in ("seeds", "hostile", "mlperf") or not path.is_file():
        raise RecipeError(f"no corpus file {name} (looked for {path})", missing=True)
    return path.read_bytes()


def rebuild_crash(name: str, corpus: Path, recipes: Path = CRASHES, _depth: int = 0) -> bytes:
    """The input of saved crash `name` (``compile-….onnx``), byte for byte, from its recipe in `recipes`
    (a file ``crashes/…`` it names is one of tests/fuzz_corpus/crashes, where the fuzzer draws from)."""
    if _depth > 20:
        raise RecipeError(f"{name}: recipes refer to each other in a loop")
    path = Path(recipes) / f"{name}.json"
    if not path.is_file():
        raise RecipeError(f"no recipe {path}", missing=True)
    recipe = json.loads(path.read_text())
    base = corpus_file(recipe["from"], corpus, _depth=_depth)
    if _sha(base) != recipe["from_sha256"]:
        raise RecipeError(f"{name}: {recipe['from']} is no longer the file this crash was mutated from "
                          f"(SHA-256 {_sha(base)[:12]}…, recipe wants {recipe['from_sha256'][:12]}…)",
                          base_changed=True)
    data = apply_edits(base, recipe["edits"], lambda other: corpus_file(other, corpus, _depth=_depth))
    if _sha(data) != recipe["sha256"]:
        raise RecipeError(f"{name}: the recipe rebuilds {len(data)} bytes of SHA-256 {_sha(data)[:12]}…, "
                          f"not the input that crashed ({recipe['sha256'][:12]}…)",
                          base_changed=any("copy" in e for e in recipe["edits"]))
    return data


# ------------------------------------------------------------------ mutations


def _st():
    from hypothesis import strategies as st

    return st


def mutate_bytes(data: bytes, draw, others: list[bytes]) -> bytes:
    st = _st()
    b = bytearray(data)
    kind = draw(st.sampled_from(["flip", "int", "truncate", "delete", "duplicate", "insert", "splice"]))
    if not b:
        return bytes(draw(st.binary(max_size=64)))
    pos = draw(st.integers(0, len(b) - 1))
    if kind == "flip":
        b[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "int":
        width = draw(st.sampled_from([1, 2, 4, 8]))
        value = draw(st.sampled_from(INTERESTING_INTS)) % (1 << (8 * width))
        b[pos:pos + width] = value.to_bytes(width, "little")
    elif kind == "truncate":
        del b[pos:]
    elif kind == "delete":
        del b[pos:pos + draw(st.integers(1, 64))]
    elif kind == "duplicate":
        n = draw(st.integers(1, 256))
        b[pos:pos] = b[pos:pos + n]
    elif kind == "insert":
        b[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    else:  # splice with another seed of the same format
        other = draw(st.sampled_from(others)) if others else data
        cut = draw(st.integers(0, len(other)))
        b = b[:pos] + bytearray(other[cut:])
    return bytes(b)


def _pick(draw, seq):
    st = _st()
    return seq[draw(st.integers(0, len(seq) - 1))] if len(seq) else None


def _extreme(arr, draw):
    """The same array with extreme values: all at the type's limits, a factor, or one spike."""
    import numpy as np

    st = _st()
    a = np.array(arr, copy=True)
    kind = draw(st.sampled_from(["max", "min", "alternate", "scale", "spike", "zero"]))
    info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else np.finfo(a.dtype)
    flat = a.reshape(-1)
    if kind == "max":
        flat[:] = info.max if a.dtype.kind in "iu" else draw(st.sampled_from([1e3, 1e9, 1e30]))
    elif kind == "min":
        flat[:] = info.min if a.dtype.kind in "iu" else -draw(st.sampled_from([1e3, 1e9, 1e30]))
    elif kind == "alternate":
        flat[::2] = info.max if a.dtype.kind in "iu" else 1e6
        flat[1::2] = info.min if a.dtype.kind in "iu" else -1e6
    elif kind == "scale" and a.dtype.kind == "f":
        flat *= draw(st.sampled_from([1e-30, 1e-12, 1e6, 1e20]))
    elif kind == "spike":
        flat[draw(st.integers(0, flat.size - 1))] = info.max if a.dtype.kind in "iu" else 1e30
    else:
        flat[:] = 0
    return a


def mutate_onnx(data: bytes, draw) -> bytes:
    """One structural edit of an ONNX ModelProto."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    st = _st()
    m = onnx.load_model_from_string(data)
    g = m.graph
    kind = draw(st.sampled_from(["extreme", "extreme", "dim", "init_dims", "init_length", "init_values", "init_type", "attr", "wire",
                                 "cycle", "dup_output", "dup_name", "drop_node", "op_type", "name", "raw_name",
                                 "opset", "swap"]))
    nodes = list(g.node)
    names = [o for n in nodes for o in n.output] + [i.name for i in g.input] + [t.name for t in g.initializer]
    marker = None
    if kind == "dim":
        vis = list(g.input) + list(g.output) + list(g.value_info)
        vi = _pick(draw, vis)
        if vi is not None and vi.type.tensor_type.shape.dim:
            d = _pick(draw, vi.type.tensor_type.shape.dim)
            d.dim_value = draw(st.sampled_from([x for x in INTERESTING_DIMS if x >= 0]))
    elif kind == "extreme" and g.initializer:  # valid structure, extreme numbers
        t = _pick(draw, g.initializer)
        arr = numpy_helper.to_array(t)
        if arr.size:
            t.CopyFrom(numpy_helper.from_array(_extreme(arr, draw), t.name))
    elif kind.startswith("init") and g.initializer:
        t = _pick(draw, g.initializer)
        if kind == "init_dims" and t.dims:
            t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(st.sampled_from(INTERESTING_DIMS))
        elif kind == "init_length":
            arr = numpy_helper.to_array(t)
            raw = arr.tobytes()
            cut = draw(st.integers(0, max(0, len(raw) - 1)))
            t.ClearField("float_data"), t.ClearField("int32_data"), t.ClearField("int64_data")
            t.raw_data = raw[:cut] if draw(st.booleans()) else raw + raw[:cut + 1]
        elif kind == "init_values":
            arr = numpy_helper.to_array(t).copy()
            if arr.size:
                flat = arr.reshape(-1)
                k = draw(st.integers(0, flat.size - 1))
                if arr.dtype.kind == "f":
                    flat[k] = draw(st.sampled_from(INTERESTING_FLOATS))
                else:
                    info = np.iinfo(arr.dtype) if arr.dtype.kind in "iu" else None
                    v = draw(st.sampled_from(INTERESTING_INTS))
                    flat[k] = v if info is None else int(np.clip(v, info.min, info.max))
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
        elif kind == "init_type":
            t.data_type = draw(st.sampled_from([1, 2, 3, 6, 7, 10, 11, 16]))
    elif kind == "attr" and nodes:
        n = _pick(draw, nodes)
        if n.attribute:
            a = _pick(draw, n.attribute)
            if a.ints:
                a.ints[draw(st.integers(0, len(a.ints) - 1))] = draw(st.sampled_from(INTERESTING_INTS[:-1]))
            elif a.type == onnx.AttributeProto.INT:
                a.i = draw(st.sampled_from(INTERESTING_INTS[:-1]))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.sampled_from(INTERESTING_FLOATS))
            elif a.type == onnx.AttributeProto.STRING:
                a.s = draw(st.sampled_from([b"SAME_UPPER", b"VALID", b"reflect", b"\xff", b""]))
    elif kind in ("wire", "cycle") and nodes:
        i = draw(st.integers(0, len(nodes) - 1))
        n = nodes[i]
        if n.input:
            j = draw(st.integers(0, len(n.input) - 1))
            if kind == "cycle" and i + 1 < len(nodes):
                later = nodes[draw(st.integers(i, len(nodes) - 1))]
                n.input[j] = later.output[0]
            else:
                n.input[j] = draw(st.sampled_from(names + ["nowhere", ""]))
    elif kind == "dup_output" and len(nodes) > 1:
        a, b = _pick(draw, nodes), _pick(draw, nodes)
        a.output[0] = b.output[0]
    elif kind == "dup_name" and names:
        target = _pick(draw, list(g.initializer) + list(g.input) + nodes)
        if hasattr(target, "op_type"):
            target.name = _pick(draw, nodes).name
        else:
            target.name = draw(st.sampled_from(names))
    elif kind == "drop_node" and nodes:
        del g.node[draw(st.integers(0, len(nodes) - 1))]
    elif kind == "op_type" and nodes:
        n = _pick(draw, nodes)
        n.op_type = draw(st.sampled_from(["Conv", "Relu", "Add", "MaxPool", "AveragePool", "Gemm", "MatMul",
                                          "Reshape", "Transpose", "Concat", "Softmax", "Pad", "Clip",
                                          "QuantizeLinear", "DequantizeLinear", "GlobalAveragePool", "Flatten",
                                          "ConstantOfShape", "Expand", "Range", "Gather", "Mul", "Tile"]))
    elif kind in ("name", "raw_name") and nodes:
        n = _pick(draw, nodes)
        if kind == "raw_name":
            marker = NAME_MARKER
            n.name = marker
        else:
            new = draw(st.sampled_from(HOSTILE_NAMES))
            if draw(st.booleans()) and n.output:  # rename a tensor everywhere it is used
                old = n.output[0]
                for other in g.node:
                    for k, v in enumerate(other.input):
                        if v == old:
                            other.input[k] = new
                for o in g.output:
                    if o.name == old:
                        o.name = new
                n.output[0] = new
            else:
                n.name = new
    elif kind == "opset" and m.opset_import:
        m.opset_import[0].version = draw(st.sampled_from([1, 6, 9, 10, 11, 13, 17, 18, 21, 99]))
    elif kind == "swap" and len(nodes) > 1:
        i, j = draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, len(nodes) - 1))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i]), b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b), g.node[j].CopyFrom(a)
    out = m.SerializeToString()
    if marker is not None:
        out = out.replace(marker.encode(), (draw(st.sampled_from(HOSTILE_BYTES)) * 8)[:len(marker)])
    return out


def mutate_tflite(data: bytes, draw) -> bytes:
    """One structural edit of a TFLite flatbuffer (object API of the schema)."""
    import flatbuffers
    import numpy as np
    from tflite_micro.tensorflow.lite.micro.python.schema_py_generated import (BuiltinOperator, Model, ModelT,
                                                                                QuantizationParametersT)

    st = _st()
    m = ModelT.InitFromObj(Model.GetRootAs(data, 0))
    sg = m.subgraphs[0]
    tensors = sg.tensors or []
    ops = sg.operators or []
    kind = draw(st.sampled_from(["extreme", "extreme", "extreme_scale", "dim", "scale", "zero_point", "qdim",
                                 "buffer_length", "buffer_index", "wire",
                                 "cycle", "dup_output", "opcode", "builtin", "options", "type", "name", "raw_name",
                                 "io", "dup_name"]))
    if kind == "extreme" and tensors:  # a constant's values, extreme but of the right type and length
        t = _pick(draw, tensors)
        dtype = {9: np.int8, 2: np.int32}.get(int(t.type))
        if dtype is not None and 0 < t.buffer < len(m.buffers) and m.buffers[t.buffer].data is not None \
                and len(m.buffers[t.buffer].data):
            arr = np.frombuffer(np.asarray(m.buffers[t.buffer].data, np.uint8).tobytes(), dtype)
            m.buffers[t.buffer].data = np.frombuffer(_extreme(arr, draw).tobytes(), np.uint8)
    elif kind == "extreme_scale" and tensors:  # positive finite scales and int8 zero points, far from usual
        t = _pick(draw, tensors)
        if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale):
            factor = draw(st.sampled_from([2.0 ** -40, 1e-12, 1e-6, 1e3, 1e9, 2.0 ** 40, 0.999999, 1.000001]))
            t.quantization.scale = [float(s) * factor for s in t.quantization.scale]
            if t.quantization.zeroPoint is not None and len(t.quantization.zeroPoint) and t.buffer == 0:
                t.quantization.zeroPoint = [draw(st.sampled_from([-128, 127, 0, -1]))] * len(t.quantization.zeroPoint)
    elif kind == "dim" and tensors:
        t = _pick(draw, tensors)
        if t.shape is not None and len(t.shape):
            shape = [int(d) for d in t.shape]
            shape[draw(st.integers(0, len(shape) - 1))] = draw(st.sampled_from(
                [d for d in INTERESTING_DIMS if -2**31 <= d < 2**31]))
            t.shape = shape
    elif kind in ("scale", "zero_point", "qdim") and tensors:
        t = _pick(draw, tensors)
        if t.quantization is None:
            t.quantization = QuantizationParametersT()
        q = t.quantization
        if kind == "scale":
            scale = [float(s) for s in (q.scale if q.scale is not None else [0.1])] or [0.1]
            scale[draw(st.integers(0, len(scale) - 1))] = draw(st.sampled_from(INTERESTING_FLOATS))
            q.scale = scale
        elif kind == "zero_point":
            zp = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0])] or [0]
            zp[draw(st.integers(0, len(zp) - 1))] = draw(st.sampled_from(INTERESTING_INTS[:-1]))
            q.zeroPoint = zp
        else:
            q.quantizedDimension = draw(st.sampled_from([-1, 0, 1, 3, 4, 100]))
    elif kind == "buffer_length" and m.buffers:
        b = _pick(draw, m.buffers)
        if b.data is not None and len(b.data):
            raw = np.asarray(b.data, np.uint8)
            cut = draw(st.integers(0, len(raw) - 1))
            b.data = raw[:cut] if draw(st.booleans()) else np.concatenate([raw, raw[:cut + 1]])
    elif kind == "buffer_index" and tensors:
        t = _pick(draw, tensors)
        t.buffer = draw(st.sampled_from([0, 1, len(m.buffers) - 1, len(m.buffers), 2**31 - 1]))
    elif kind in ("wire", "cycle", "dup_output") and ops:
        i = draw(st.integers(0, len(ops) - 1))
        op = ops[i]
        if kind == "dup_output" and len(ops) > 1:
            other = _pick(draw, ops)
            op.outputs = list(other.outputs)
        elif op.inputs is not None and len(op.inputs):
            ins = [int(v) for v in op.inputs]
            j = draw(st.integers(0, len(ins) - 1))
            if kind == "cycle":
                ins[j] = int(ops[draw(st.integers(i, len(ops) - 1))].outputs[0])
            else:
                ins[j] = draw(st.sampled_from([-1, -2, len(tensors), len(tensors) - 1, 2**31 - 1, 0]))
            op.inputs = ins
    elif kind == "opcode" and ops:
        _pick(draw, ops).opcodeIndex = draw(st.sampled_from([0, 1, len(m.operatorCodes), 2**31 - 1]))
    elif kind == "builtin" and m.operatorCodes:
        code = _pick(draw, m.operatorCodes)
        names = [k for k in vars(BuiltinOperator) if not k.startswith("_")]
        code.builtinCode = getattr(BuiltinOperator, draw(st.sampled_from(sorted(names))))
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    elif kind == "options" and ops:
        op = _pick(draw, ops)
        opt = op.builtinOptions
        fields = [k for k, v in vars(opt).items() if isinstance(v, (int, float)) and not isinstance(v, bool)] \
            if opt is not None else []
        if fields:
            f = draw(st.sampled_from(sorted(fields)))
            if isinstance(getattr(opt, f), float):
                setattr(opt, f, draw(st.sampled_from(INTERESTING_FLOATS)))
            else:
                setattr(opt, f, draw(st.sampled_from([0, -1, 1, 2, 5, 9, 127, 2**31 - 1, -2**31])))
    elif kind == "type" and tensors:
        _pick(draw, tensors).type = draw(st.sampled_from([0, 1, 2, 3, 4, 7, 9, 10, 16, 17, 99]))
    elif kind in ("name", "raw_name", "dup_name") and tensors:
        t = _pick(draw, tensors)
        if kind == "raw_name":
            t.name = (draw(st.sampled_from(HOSTILE_BYTES)) * 8)[:8]
        elif kind == "dup_name":
            t.name = _pick(draw, tensors).name
        else:
            t.name = draw(st.sampled_from(HOSTILE_NAMES))
    elif kind == "io":
        which = draw(st.sampled_from(["inputs", "outputs"]))
        setattr(sg, which, draw(st.sampled_from([[], [0], [len(tensors) - 1], [len(tensors)], [0, 0], [-1]])))
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def mutate(data: bytes, fmt: str, draw, others: list[bytes]) -> bytes:
    st = _st()
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        structural = draw(st.sampled_from([True, True, True, False]))
        if structural:
            try:
                data = (mutate_onnx if fmt == "onnx" else mutate_tflite)(data, draw)
                continue
            except Exception:  # the seed no longer parses: mutate its bytes instead
                pass
        data = mutate_bytes(data, draw, others)
    return data


# ------------------------------------------------------------------ targets


class Crash(Exception):
    def __init__(self, signature: str, detail: str):
        super().__init__(signature)
        self.signature, self.detail = signature, detail


def _signature(exc: BaseException) -> str:
    """Exception type + innermost frame inside mcuforge (or the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "mcuforge" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__} at {where}"


def run_frontend(fmt: str, data: bytes) -> str:
    from mcuforge.ir import McuforgeError

    if fmt == "onnx":
        from mcuforge.frontends.onnx import load_bytes
    else:
        from mcuforge.frontends.tflite import load_bytes
    try:
        g = load_bytes(data, source=f"fuzz.{fmt}")
    except McuforgeError as err:
        if "\n" in str(err):
            raise Crash(f"{fmt}: error message of more than one line", str(err)) from None
        return "refused"
    except (InputTimeout, KeyboardInterrupt):
        raise
    except BaseException as exc:  # noqa: BLE001 - anything else is a crash
        raise Crash(_signature(exc), "".join(traceback.format_exception(exc))) from None
    for n in g.nodes:
        if not isinstance(n.name, str) or any(not isinstance(t, str) for t in n.inputs + n.outputs):
            raise Crash("non-text name in the graph", repr(n))
    json.dumps([n.name for n in g.nodes] + list(g.tensors))
    return "loaded"


def run_compile(fmt: str, data: bytes, workdir: Path, sanitize: bool = False,
                options: list[str] | None = None) -> tuple[int, str]:
    """Compile `data` in process; (exit code, stderr) or Crash when the invariant breaks."""
    from mcuforge.tools.cli import main

    model = workdir / f"model{SUFFIX[fmt]}"
    model.write_bytes(data)
    out = workdir / "out"
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            rc = main(["compile", str(model), "-o", str(out), "-q", *(options or [])])
        except SystemExit as e:  # argparse only; never for a model
            rc = e.code
    text = err.getvalue()
    leftovers = [p.name for p in workdir.iterdir() if p.name.startswith(".out.")]
    problem = None
    if rc not in (0, 2, 3):
        problem = f"exit {rc}"
    elif "Traceback" in text or "internal error" in text:
        problem = "traceback"
    elif leftovers:
        problem = f"temporary directory left behind: {leftovers}"
    elif rc != 0 and out.exists():
        problem = "failed compile left its output directory"
    elif rc == 0:
        report = json.loads((out / "report.json").read_text())
        name = report["name"]
        missing = [f for f in (f"{name}.c", f"{name}.h", f"{name}_weights.c", "plan.pickle") if not (out / f).is_file()]
        if missing:
            problem = f"successful compile without {missing}"
        elif sanitize:
            problem = _sanitized_run(out, workdir)
    if problem is not None:
        signature = problem
        if problem in ("exit 1", "traceback"):
            signature = _debug_signature(model, workdir, options) or text.strip().splitlines()[-1][:160]
        raise Crash(f"compile: {signature}", text)
    shutil.rmtree(out, ignore_errors=True)
    return rc, text


def _debug_signature(model: Path, workdir: Path, options: list[str] | None) -> str | None:
    """Rerun with --debug to name the failing frame."""
    from mcuforge.tools.cli import main

    err = io.StringIO()
    out = workdir / "debug-out"
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        main(["--debug", "compile", str(model), "-o", str(out), "-q", *(options or [])])
    shutil.rmtree(out, ignore_errors=True)
    lines = err.getvalue().splitlines()
    frames = [ln.strip() for ln in lines if ln.strip().startswith("File ") and "mcuforge" in ln]
    exc = [ln for ln in lines if ln and not ln.startswith((" ", "Traceback", "mcuforge:", "WARNING", "["))]
    if not frames:
        return None
    where = frames[-1].split(", in ")[0].replace("File ", "")
    path, _, line = where.rpartition(", line ")
    return f"{(exc[-1].split(':')[0] if exc else '?')} at {Path(path.strip(chr(34))).name}:{line}"


def _sanitized_run(out: Path, workdir: Path) -> str | None:
    from mcuforge.tools import hostrun
    from mcuforge.tools.compare import random_inputs
    from mcuforge.ir import McuforgeError
    from mcuforge.plan import Plan

    plan = Plan.load(out)
    # ASan reserves terabytes of address space for its shadow memory: the child runs without
    # this process's address-space limit (only the soft limit is set, see limit_resources)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    env = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=86", "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        exe = hostrun.build(plan, out, workdir / "asan", opt="-O1",
                            extra_flags=["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"])
        hostrun.run(plan, exe, random_inputs(plan, 1, seed=0))
    except McuforgeError as err:
        return "sanitized build or run failed: " + re.sub(r"==\d+==|0x[0-9a-f]+", "", str(err))[:160]
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return None


# ------------------------------------------------------------------ driver


def _alarm(signum, frame):
    raise InputTimeout()


def limit_resources(memory_mb: int) -> None:
    """Address-space (soft) limit of this process: an allocation beyond it is a MemoryError."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def check_one(target: str, fmt: str, data: bytes, timeout: float, sanitize: bool = False,
              options: list[str] | None = None) -> str:
    """Run one input through a target under the per-input time limit; Crash on a broken invariant."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        if target == "compile":
            with tempfile.TemporaryDirectory(prefix="mcuforge-fuzz-") as tmp:
                return f"exit {run_compile(fmt, data, Path(tmp), sanitize, options)[0]}"
        return run_frontend(fmt, data)
    except InputTimeout:
        raise Crash(f"{target}: input took more than {timeout:g} s", "") from None
    except MemoryError as exc:
        raise Crash(f"{target}: MemoryError under the address-space limit", _signature(exc)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Fuzzer:
    def __init__(self, seeds, timeout: float, save: Path | None, sanitize_every: int = 0, log=print):
        self.seeds, self.timeout, self.save, self.log = seeds, timeout, save, log
        self.sanitize_every = sanitize_every
        self.tried: dict[str, int] = {}
        self.outcomes: dict[str, dict[str, int]] = {}
        self.crashes: dict[str, dict] = {}
        self.compiled = 0
        self.files = {name: data for pool in seeds.values() for name, data in pool}  # the edits' sources

    def case(self, target: str):
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        fmts = [f for f in ("onnx", "tflite") if self.seeds[f] and (target == "compile" or f == target)]

        @settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.data())
        def one(data):
            fmt = data.draw(st.sampled_from(fmts))
            pool = self.seeds[fmt]
            real = [s for s in pool if s[0].startswith(("seeds/", "mlperf/"))] or pool
            # three inputs in four start from a real model, the others from hostile files and crashes
            seed_name, seed = data.draw(st.sampled_from(real if data.draw(st.integers(0, 3)) else pool))
            # compile: prefer small seeds (each compile costs time in proportion to the model)
            if target == "compile" and len(seed) > 200_000 and data.draw(st.integers(0, 3)):
                seed_name, seed = min(pool, key=lambda s: len(s[1]))
            mutated = mutate(seed, fmt, data.draw, [s for _, s in pool])
            options = data.draw(st.sampled_from(COMPILE_OPTIONS)) if target == "compile" else []
            self.run(target, fmt, mutated, seed_name, options)

        return one

    def run(self, target: str, fmt: str, data: bytes, origin: str = "", options: list[str] | None = None) -> None:
        self.tried[target] = self.tried.get(target, 0) + 1
        sanitize = False
        try:
            if target == "compile" and self.sanitize_every:
                sanitize = (self.compiled + 1) % self.sanitize_every == 0
            outcome = check_one(target, fmt, data, self.timeout, sanitize, options)
            if outcome == "exit 0":
                self.compiled += 1
        except Crash as crash:
            outcome = "crash"
            self.record(target, fmt, data, crash, origin, options or [])
        counts = self.outcomes.setdefault(target, {})
        counts[outcome] = counts.get(outcome, 0) + 1

    def record(self, target, fmt, data, crash: Crash, origin: str, options: list[str]) -> None:
        sig = crash.signature
        if sig in self.crashes:
            self.crashes[sig]["count"] += 1
            return
        digest = _sha(data)[:12]
        entry = {"signature": sig, "target": target, "format": fmt, "from": origin, "options": options,
                 "count": 1, "file": f"{target}-{digest}{SUFFIX[fmt]}"}
        self.crashes[sig] = entry
        self.log(f"fuzz: CRASH [{sig}] from {origin}\n{crash.detail[-1500:]}")
        if self.save is not None:
            base = self.files[origin]
            sources = {origin: base, **{k: v for k, v in sorted(self.files.items()) if k != origin}}
            edits = diff_edits(base, data, sources)
            if apply_edits(base, edits, self.files.__getitem__) != data:
                raise AssertionError(f"the recipe of {entry['file']} does not rebuild it")
            recipe = {**entry, "from_sha256": _sha(base), "sha256": _sha(data), "edits": edits}
            self.save.mkdir(parents=True, exist_ok=True)
            (self.save / (entry["file"] + ".json")).write_text(json.dumps(recipe, indent=2) + "\n")

    def replay(self, targets: list[str]) -> None:
        """Every corpus file once, unmutated, through each target (under the same limits)."""
        for fmt, files in self.seeds.items():
            for name, data in files:
                for target in targets:
                    if target in (fmt, "compile"):
                        self.run(target, fmt, data, name)  # a crash here: a recipe without edits

    def fuzz(self, target: str, seconds: float, rng: random.Random) -> None:
        one = self.case(target)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            one.hypothesis.fuzz_one_input(rng.randbytes(rng.choice([64, 256, 1024, 4096])))

    def summary(self, seconds: float) -> dict:
        return {"seconds": round(seconds, 1), "inputs_tried": self.tried, "outcomes": self.outcomes,
                "seed_files": {f: len(v) for f, v in self.seeds.items()},
                "distinct_crashes": len(self.crashes), "crashes": list(self.crashes.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="total fuzzing time, split over the targets")
    ap.add_argument("--target", default=",".join(TARGETS), help="comma-separated: onnx, tflite, compile")
    ap.add_argument("--weights", default="1,1,2", help="share of the time per target, same order")
    ap.add_argument("--seed", type=int, default=0, help="random seed (runs are reproducible for a seed)")
    ap.add_argument("--input-timeout", type=float, default=30.0, help="seconds one input may take")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of this process")
    ap.add_argument("--save-crashes", metavar="DIR", help="write each distinct crash here")
    ap.add_argument("--sanitize-every", type=int, default=0, metavar="N",
                    help="build and run every N-th successful compile under ASan+UBSan (0: never)")
    ap.add_argument("--json", metavar="FILE", help="also write the summary here")
    ap.add_argument("--corpus", metavar="DIR",
                    help="the corpus tests/make_fuzz_corpus.py built there (default: build it now)")
    ap.add_argument("--no-replay", action="store_true",
                    help="do not first run every corpus file unmutated through each target")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mcuforge-fuzz-corpus-") as tmp:
        corpus = Path(args.corpus) if args.corpus else build_corpus(Path(tmp))
        seeds = load_seeds(corpus)
    limit_resources(args.memory_mb)
    import warnings

    warnings.simplefilter("ignore")
    targets = [t for t in args.target.split(",") if t]
    weights = [float(w) for w in args.weights.split(",")][:len(targets)]
    weights += [1.0] * (len(targets) - len(weights))
    fuzzer = Fuzzer(seeds, args.input_timeout, Path(args.save_crashes) if args.save_crashes else None,
                    args.sanitize_every)
    rng = random.Random(args.seed)
    start = time.monotonic()
    if not args.no_replay:
        fuzzer.replay(targets)
    left = max(0.0, args.seconds - (time.monotonic() - start))
    for target, w in zip(targets, weights):
        fuzzer.fuzz(target, left * w / sum(weights), rng)
    summary = fuzzer.summary(time.monotonic() - start)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 1 if fuzzer.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
