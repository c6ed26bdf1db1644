"""Builds the fuzzing corpus (no model file of it is committed):

* ``seeds/``   -- the zoo models exported to ONNX (float; QDQ-quantized by
  onnxruntime as well for two of them, and instead for the one above 400 KB),
  the small TFLite models of test_tflite.py, and the models users bring of
  test_tflite_models.py / test_tflite_float.py (float32 ends around an int8
  model, folded shape arithmetic, a float model), and the 16x8 models of
  test_int16.py (int16 activations, int8 weights, int64 biases);
* ``hostile/`` -- hand-made hostile files, one property each, and
  ``expected.json``: the exit code and a part of the error each must give.

The output is deterministic for given versions of torch, onnx, onnxruntime &c.
and, for the QDQ seeds, for the float kernels onnxruntime picks on this CPU (its
calibration runs the float model). torch's random weight initialisation
(``uniform_``/``randn``) vectorises differently per CPU (AVX2/AVX512 builds give
other last bits than the portable one), so the build pins torch to its portable
kernels (``ATEN_CPU_CAPABILITY=default``): the float seeds are the same bytes on
any x86-64 machine.
What is committed in tests/fuzz_corpus is text: ``hostile/expected.json``, and
``manifest.json`` (name, size and SHA-256 of every file built, and the versions
that built them), against which the suite checks every build; the saved crashes
of ``crashes/`` are recipes that rebuild their input from one of these files
(see fuzzing.py).

    .venv/bin/python tests/make_fuzz_corpus.py DIR     # build the corpus into DIR
    .venv/bin/python tests/make_fuzz_corpus.py --update  # rewrite expected.json and manifest.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CORPUS = HERE / "fuzz_corpus"

ELEMENTS = "elements"  # the tensor size limit's message


# ------------------------------------------------------------------ ONNX


def _graph_model(nodes, inputs, outputs, inits=(), opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _base() -> onnx.ModelProto:
    from test_cli import small_onnx

    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(small_onnx(Path(tmp) / "m.onnx"))


def _bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _init(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _qdq_base() -> onnx.ModelProto:
    """small_onnx quantized to QDQ by onnxruntime (int8, per channel)."""
    from test_cli import small_onnx
    from test_frontends import quantize_qdq

    with tempfile.TemporaryDirectory() as tmp:
        src = small_onnx(Path(tmp) / "m.onnx")
        m = onnx.load(src)
        m.graph.input[0].name = "input"
        for n in m.graph.node:
            n.input[:] = ["input" if i == "x" else i for i in n.input]
        onnx.save(m, src)
        return onnx.load(quantize_qdq(src, Path(tmp) / "q.onnx", (1, 3, 12, 12), per_channel=True))


def _input_scale_init(model) -> onnx.TensorProto:
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    return _init(model, q.input[1])


def onnx_hostile() -> dict[str, tuple[bytes, int, str]]:
    out: dict[str, tuple[bytes, int, str]] = {}

    m = _base()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 100000
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 100000
    out["huge_input_dims"] = (_bytes(m), 2, ELEMENTS)

    m = _base()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -5
    out["negative_input_dim"] = (_bytes(m), 2, "dynamic shape")

    # a constant of 10^12 elements from a 20-byte shape: refused before it is computed
    shape = numpy_helper.from_array(np.array([1, 1000000, 1000000], np.int64), "shape")
    m = _graph_model([helper.make_node("ConstantOfShape", ["shape"], ["big"], name="make_big"),
                      helper.make_node("Add", ["x", "big"], ["y"], name="add_big")],
                     [_f("x", [1, 8])], [_f("y", [1, 8])], [shape])
    out["constant_of_shape_1e12"] = (_bytes(m), 2, "make_big (ConstantOfShape): cannot convert")

    m = _graph_model([helper.make_node("Range", ["a", "b", "c"], ["r"], name="range_huge"),
                      helper.make_node("Add", ["x", "r"], ["y"], name="add_range")],
                     [_f("x", [1, 8])], [_f("y", [1, 8])],
                     [numpy_helper.from_array(np.array(0, np.int64), "a"),
                      numpy_helper.from_array(np.array(10**12, np.int64), "b"),
                      numpy_helper.from_array(np.array(1, np.int64), "c")])
    out["range_1e12"] = (_bytes(m), 2, "range_huge")

    m = _graph_model([helper.make_node("Gather", ["table", "idx"], ["g"], name="gather_amplify", axis=0),
                      helper.make_node("Add", ["x", "g"], ["y"], name="add_gather")],
                     [_f("x", [1, 8])], [_f("y", [1, 8])],
                     [numpy_helper.from_array(np.zeros((1, 9000), np.float32), "table"),
                      numpy_helper.from_array(np.zeros(9000, np.int32), "idx")])
    out["gather_8e7"] = (_bytes(m), 2, "gather_amplify")

    # every tensor within the size limit, but 4.8e9 multiply-accumulates per inference
    w = numpy_helper.from_array(np.full((64, 32, 3, 3), 0.01, np.float32), "w")
    m = _graph_model([helper.make_node("Conv", ["x", "w"], ["y"], name="heavy_conv", pads=[1, 1, 1, 1])],
                     [_f("x", [1, 32, 512, 512])], [_f("y", [1, 64, 512, 512])], [w])
    out["macs_4e9"] = (_bytes(m), 2, "multiply-accumulates")

    # every tensor within the size limit, but six of 16.7M values each: 100M values together
    chain = [helper.make_node("Transpose", [f"t{i}"], [f"t{i + 1}"], name=f"swap_{i}", perm=[0, 1, 3, 2])
             for i in range(6)]
    m = _graph_model(chain, [_f("t0", [1, 16, 1024, 1024])], [_f("t6", [1, 16, 1024, 1024])])
    out["activations_1e8_together"] = (_bytes(m), 2, "activations hold")

    m = _base()
    _node(m, "conv1").attribute[0].ints[:] = [1000000, 1000000, 1000000, 1000000]
    out["conv_pads_1e6"] = (_bytes(m), 2, ELEMENTS)

    m = _base()
    _node(m, "conv1").input[0] = "r"  # conv reads relu's output, relu reads conv's: a cycle
    out["cycle"] = (_bytes(m), 2, "not a valid ONNX model")

    m = _base()
    _node(m, "gap").input[0] = "nowhere"
    out["dangling_reference"] = (_bytes(m), 2, "nowhere")

    # a denormal scale is positive and finite: valid, if useless (every multiplier flushes to zero)
    for what, value, code in (("nan", np.nan, 2), ("inf", np.inf, 2), ("zero", 0.0, 2), ("negative", -0.05, 2),
                              ("denormal", 1e-44, 0)):
        m = _qdq_base()
        t = _input_scale_init(m)
        t.CopyFrom(numpy_helper.from_array(np.array(value, np.float32), t.name))
        out[f"qdq_scale_{what}"] = (_bytes(m), code, "scale" if code else "")

    m = _qdq_base()
    q = next(n for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    zp = _init(m, q.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.array(1000, np.int32), zp.name))
    out["qdq_zero_point_out_of_range"] = (_bytes(m), 2, "int32")

    m = _base()
    w = _init(m, "w")
    raw = numpy_helper.to_array(w).tobytes()
    w.ClearField("float_data")
    w.raw_data = raw[:-12]
    out["weights_wrong_length"] = (_bytes(m), 2, "tensor name: w")

    m = _base()
    _node(m, "relu1").output[0] = "c"  # two nodes write tensor c
    _node(m, "gap").input[0] = "c"
    out["duplicate_tensor_names"] = (_bytes(m), 2, "not a valid ONNX model")

    m = _base()
    for n in m.graph.node:
        n.name = "same"
    out["duplicate_node_names"] = (_bytes(m), 0, "")

    m = _base()
    for n, new in zip(m.graph.node, ["*/ int evil; /*", "1 not an identifier", "a\nb\tc", "??/", "\u202ertl"]):
        n.name = new
    out["names_not_c_identifiers"] = (_bytes(m), 0, "")

    data = _bytes(_base())
    out["name_not_utf8"] = (data.replace(b"conv1", b"\xff\xff\xff\x7f1"), 0, "")
    return out


# ------------------------------------------------------------------ TFLite


def _fc_tensors(in_scale=0.05, in_zp=3, out_scale=0.1, out_zp=-2, w=None, names=("x", "w", "b", "y")):
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (4, 8)) if w is None else w
    return [dict(shape=(1, 8), scale=in_scale, zp=in_zp, name=names[0]),
            dict(shape=np.shape(w), data=w, scale=0.01, name=names[1]),
            dict(shape=(4,), dtype="int32", data=rng.integers(-500, 500, 4), scale=0.0005, name=names[2]),
            dict(shape=(1, 4), scale=out_scale, zp=out_zp, name=names[3])]


FC = ("FULLY_CONNECTED", "FullyConnectedOptions", {})


def _fc_model(**kw) -> bytes:
    from test_tflite import build_model

    return build_model(_fc_tensors(**kw), [FC + ([0, 1, 2], [3])], [0], [3])


def tflite_hostile() -> dict[str, tuple[bytes, int, str]]:
    from test_robustness import _fc_tflite
    from test_tflite import build_model

    from mcuforge.bounds import INT32_MAX, input_swing

    out: dict[str, tuple[bytes, int, str]] = {}
    t = _fc_tensors()
    t[0]["shape"] = (1, 1000000, 1000000, 8)
    t[3]["shape"] = (1, 1000000, 1000000, 4)
    out["activation_1e12"] = (build_model(t, [FC + ([0, 1, 2], [3])], [0], [3]), 2, ELEMENTS)

    t = _fc_tensors()
    t[3]["shape"] = (1, -4)
    out["negative_dim"] = (build_model(t, [FC + ([0, 1, 2], [3])], [0], [3]), 2, "negative dimension")

    t = _fc_tensors() + [dict(shape=(1, 4), scale=0.1, zp=0, name="y2")]
    t[0]["shape"] = (1, 4)
    t[1]["data"] = t[1]["data"][:, :4]
    t[1]["shape"] = (4, 4)
    # op 0 reads op 1's output, op 1 reads op 0's: a cycle
    out["cycle"] = (build_model(t, [FC + ([4, 1, 2], [3]), FC + ([3, 1, 2], [4])], [0], [4]), 2, "cycle")

    out["dangling_reference"] = (build_model(_fc_tensors(), [FC + ([0, 99, 2], [3])], [0], [3]), 2,
                                 "refers to tensor 99")
    for what, value in (("nan", np.nan), ("inf", np.inf), ("zero", 0.0), ("negative", -0.05)):
        out[f"scale_{what}"] = (_fc_model(in_scale=value), 2, "non-positive or non-finite scale")
    out["zero_point_out_of_range"] = (_fc_model(out_zp=1000), 2, "outside int8")
    t = _fc_tensors()
    t[1]["shape"] = (4, 9)  # claims 36 weights, holds 32
    out["weights_wrong_length"] = (build_model(t, [FC + ([0, 1, 2], [3])], [0], [3]), 2, "needs 36 bytes")
    t = _fc_tensors()
    t[1]["shape"] = (1000000, 1000000)
    out["weights_claim_1e12"] = (build_model(t, [FC + ([0, 1, 2], [3])], [0], [3]), 2, "bytes")
    out["duplicate_tensor_names"] = (_fc_model(names=("t", "t", "t", "t")), 0, "")
    t = _fc_tensors() + [dict(shape=(4, 4), data=np.eye(4, dtype=np.int8), scale=0.01, name="w2")]
    out["duplicate_output"] = (build_model(t, [FC + ([0, 1, 2], [3]), FC + ([3, 4, -1], [3])], [0], [3]), 2,
                               "written twice")
    out["names_not_c_identifiers"] = (_fc_model(names=("*/ int evil; /*", "1 x", "a\nb", "??/")), 0, "")
    data = _fc_model(names=("x", "w", "b", "MARK"))
    out["name_not_utf8"] = (data.replace(b"MARK", b"\xff\xfe\x7f\x00"), 0, "")
    edge = INT32_MAX - 127 * 16 * input_swing(-3)
    out["accumulator_overflow"] = (_fc_tflite(edge + 1), 2, "int32 accumulator")
    from test_tflite import _dynamic_range_model

    out["dynamic_range"] = (_dynamic_range_model(), 2, "dynamic-range")
    float_io = _float_io_fc()
    out["float_input_read_twice"] = (float_io[0], 2, "neither full-integer nor float")
    out["float_io_uint8_inside"] = (float_io[1], 2, "neither full-integer nor float")
    return out


def _float_io_fc() -> tuple[bytes, bytes]:
    """Float-I/O models the frontend must refuse: the float input also read by an operator other than
    its QUANTIZE; a QUANTIZE to uint8."""
    from mcuforge.tflite_writer import build_model

    t = _fc_tensors() + [dict(shape=(1, 8), dtype="float32", name="xf"), dict(shape=(1, 8), dtype="float32")]
    twice = build_model(t, [("QUANTIZE", None, {}, [4], [0]), FC + ([0, 1, 2], [3]),
                            ("RELU", None, {}, [4], [5])], [4], [3, 5])
    t = _fc_tensors() + [dict(shape=(1, 8), dtype="float32", name="xf")]
    t[0] = dict(t[0], dtype="uint8", zp=128)
    uint8 = build_model(t, [("QUANTIZE", None, {}, [4], [0]), FC + ([0, 1, 2], [3])], [4], [3])
    return twice, uint8


# ------------------------------------------------------------------ seeds


def seeds() -> dict[str, bytes]:
    import torch

    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        raise SystemExit("make_fuzz_corpus.py: torch was imported with CPU capability "
                         f"{torch.backends.cpu.get_cpu_capability()}; the seeds are built with its portable "
                         "kernels: run this file as a script (it sets ATEN_CPU_CAPABILITY=default)")
    from test_frontends import export_onnx, quantize_qdq
    from test_tflite import _conv_net, _fc_net, _mean_net, _misc_net

    from mcuforge.zoo import ZOO

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(ZOO):
            module, example = ZOO[name]()
            path = export_onnx(module, example, Path(tmp) / f"{name}.onnx")
            big = path.stat().st_size > 400_000  # kept small: the larger float models go in as QDQ only
            if not big:
                out[f"zoo_{name}.onnx"] = path.read_bytes()
            if big or name in ("mbv1", "resnet8"):
                q = quantize_qdq(path, Path(tmp) / f"{name}_qdq.onnx", tuple(example.shape), per_channel=name == "mbv1")
                out[f"zoo_{name}_qdq.onnx"] = q.read_bytes()
    for make in (_conv_net, _fc_net, _mean_net, _misc_net):
        out[f"built{make.__name__}.tflite"] = make()
    from test_tflite_float import _image_net, _signal_net
    from test_tflite_models import MODELS, _two_inputs

    for name in ("float_io", "vector_add", "dynamic_batch", "batch_norm", "transpose_prelu"):
        out[f"user_{name}.tflite"] = MODELS[name]()
    out["user_two_inputs.tflite"] = _two_inputs()
    out["user_float_image.tflite"] = _image_net()
    out["user_float_signal.tflite"] = _signal_net()
    from test_int16 import MODELS as INT16_MODELS

    for name, make in sorted(INT16_MODELS.items()):  # 16x8: int16 activations, int8 weights, int64 biases
        out[f"int16_{name}.tflite"] = make(0)
    return out


# the packages whose versions decide the bytes built
VERSIONED = ("torch", "onnx", "onnxruntime", "onnxscript", "onnx-ir", "protobuf", "flatbuffers", "numpy")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in VERSIONED:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "absent"
    return out


def mlas_isa() -> str:
    """The instruction set of the float kernels onnxruntime's MLAS dispatches to on this CPU (x86-64:
    AVX512F, else AVX2 with FMA3, else AVX, else SSE2); the QDQ seeds' scales come from float
    inferences with them, so their last bits can depend on it."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        return machine
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "x86_64 (unknown features)"
    for isa, need in (("avx512f", ("avx512f",)), ("avx2+fma", ("avx2", "fma")), ("avx", ("avx",))):
        if all(f in flags for f in need):
            return f"x86_64 {isa}"
    return "x86_64 sse2"


def build(dest: Path) -> dict:
    """Write seeds/, hostile/ (and hostile/expected.json) into `dest`; return the manifest of what was written."""
    dest = Path(dest)
    seed_dir, hostile_dir = dest / "seeds", dest / "hostile"
    for d in (seed_dir, hostile_dir):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            f.unlink()
    for name, data in seeds().items():
        (seed_dir / name).write_bytes(data)
    expected = {}
    for suffix, files in ((".onnx", onnx_hostile()), (".tflite", tflite_hostile())):
        for name, (data, code, needle) in files.items():
            fname = name + suffix
            (hostile_dir / fname).write_bytes(data)
            expected[fname] = {"exit": code, "error_contains": needle}
    (hostile_dir / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    return manifest(dest)


def manifest(dest: Path) -> dict:
    files = {}
    for sub in ("seeds", "hostile"):
        for f in sorted((Path(dest) / sub).iterdir()):
            if f.suffix in (".onnx", ".tflite"):
                data = f.read_bytes()
                files[f"{sub}/{f.name}"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {"built_with": versions(), "built_on": manifest_machine(), "files": files}


def manifest_machine() -> dict[str, str]:
    return {"onnxruntime float kernels": mlas_isa()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build the fuzzing corpus (seeds and hostile files).")
    ap.add_argument("dest", nargs="?", help="directory to build the corpus into")
    ap.add_argument("--update", action="store_true",
                    help=f"rewrite {CORPUS.relative_to(HERE.parent)}/hostile/expected.json and manifest.json")
    args = ap.parse_args(argv)
    if not args.dest and not args.update:
        ap.error("give a directory to build into, or --update")
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(args.dest or tmp)
        built = build(dest)
        if args.update:
            (CORPUS / "hostile").mkdir(parents=True, exist_ok=True)
            (CORPUS / "hostile" / "expected.json").write_bytes((dest / "hostile" / "expected.json").read_bytes())
            (CORPUS / "manifest.json").write_text(json.dumps(built, indent=2, sort_keys=True) + "\n")
    sizes = sum(f["size"] for f in built["files"].values())
    print(f"built {len(built['files'])} seed and hostile files ({sizes:,} bytes)"
          + (f" into {args.dest}" if args.dest else ""))
    return 0


if __name__ == "__main__":
    os.environ["ATEN_CPU_CAPABILITY"] = "default"  # before torch is imported: see the docstring
    sys.exit(main())
