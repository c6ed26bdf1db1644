"""Portable C99 backend: the Plan -> <name>.h, <name>.c, <name>_weights.c and
the runtime kernels the model uses (copied into ``mcuforge_runtime/``, so the
output directory builds on its own with any C99 compiler).

The emitted code is one parameter struct and one kernel call per layer, the
layer's name in a comment, every global prefixed with the model name.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..version import __version__
from ..ops import Step, describe_step
from ..plan import Plan
from ..registry import Backend
from .cwriter import c_comment, c_float, c_int, c_int_array

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
RUNTIME_SUBDIR = "mcuforge_runtime"

STRUCT = {
    "conv2d_s8": "mcf_conv2d_params",
    "depthwise_conv2d_s8": "mcf_depthwise_conv2d_params",
    "depthwise_conv2d_s8_inplace": "mcf_depthwise_conv2d_params",
    "fully_connected_s8": "mcf_fully_connected_params",
    "add_s8": "mcf_add_params",
    "avg_pool_s8": "mcf_pool_params",
    "max_pool_s8": "mcf_pool_params",
    "mean_s8": "mcf_mean_params",
    "softmax_s8": "mcf_softmax_params",
    "requantize_s8": "mcf_requantize_params",
    "concat_s8": "mcf_concat_params",
    "pad_s8": "mcf_pad_params",
    "transpose_s8": "mcf_transpose_params",
    "copy_tile_s8": "mcf_copy_tile_params",
    "lut_s8": "mcf_lut_params",
    "mul_s8": "mcf_mul_params",
    "sub_s8": "mcf_sub_params",
    "maximum_s8": "mcf_maximum_minimum_params",
    "minimum_s8": "mcf_maximum_minimum_params",
    "strided_slice_s8": "mcf_strided_slice_params",
    "resize_nearest_s8": "mcf_resize_nearest_params",
    "transpose_conv_s8": "mcf_transpose_conv_params",
    "binary_s8": "mcf_binary_params",
    "binary_const_s8": "mcf_binary_params",
    "reduce_s8": "mcf_reduce_params",
    "tile_s8": "mcf_tile_params",
    # int16 activations (16x8 models): runtime/include/mcuforge/kernels_s16.h
    "conv2d_s16": "mcf_conv2d_s16_params",
    "depthwise_conv2d_s16": "mcf_depthwise_conv2d_s16_params",
    "fully_connected_s16": "mcf_fully_connected_s16_params",
    "transpose_conv_s16": "mcf_transpose_conv_s16_params",
    "add_s16": "mcf_add_sub_s16_params",
    "sub_s16": "mcf_add_sub_s16_params",
    "leaky_relu_s16": "mcf_leaky_relu_s16_params",
    "requantize_s16": "mcf_requantize_s16_params",
    "requantize_s8_s16": "mcf_requantize_s16_params",
    "requantize_s16_s8": "mcf_requantize_s16_params",
    "pad_s16": "mcf_pad_params",
    "strided_slice_s16": "mcf_strided_slice_params",
    "concat_s16": "mcf_concat_s16_params",
    "max_pool_s16": "mcf_pool_s16_params",
    "avg_pool_s16": "mcf_pool_s16_params",
    "mul_s16": "mcf_mul_s16_params",
    "logistic_s16": "mcf_sigmoid_s16_params",
    "tanh_s16": "mcf_sigmoid_s16_params",
    "softmax_s16": "mcf_softmax_s16_params",
}
# Per-tile geometry of a patch stage: the parameter fields each tile overrides,
# in the column order of the emitted tables.
WINDOW_FIELDS = ("in_h", "in_w", "out_h", "out_w", "pad_top", "pad_left")
COPY_FIELDS = ("tile_h", "tile_w", "src_w", "src_y", "src_x", "dst_y", "dst_x")
CONST_ARRAYS = {"table": "int8_t", "row_index": "int32_t", "col_index": "int32_t", "filter": "int8_t",
                "bias": "int32_t", "multiplier": "int32_t", "shift": "int32_t",
                "pw_requant": "int32_t", "constant": "int8_t"}
CONST_ARRAYS_S16 = {"bias": "int64_t", "exp_lut": "int16_t", "one_over_one_plus_x_lut": "int16_t"}  # 16x8 kernels
# C element type of a tensor's dtype
C_TYPES = {"int8": "int8_t", "int16": "int16_t"}
CONCAT_KERNELS = ("concat_s8", "concat_s16")


def c_type(tensor) -> str:
    return C_TYPES[tensor.dtype]


def runtime_sources(plan: Plan) -> list[str]:
    from ..kernels import RUNTIME_SOURCES, TRAINING_RUNTIME_SOURCES

    files: dict[str, None] = {}
    for s in plan.steps + (plan.training.steps if plan.training is not None else []):
        for f in RUNTIME_SOURCES.get(s.kernel) or TRAINING_RUNTIME_SOURCES[s.kernel]:
            files[f] = None
    return sorted(files)


S16_KERNELS = frozenset(k for k in STRUCT if "s16" in k)


class _Emitter:
    headers = ("kernels.h", "kernels_s16.h")  # public runtime headers the model's C includes

    def __init__(self, plan: Plan):
        self.plan = plan
        self.p = plan.name  # prefix
        self.P = plan.name.upper()
        self.weights: list[str] = []  # definitions for <name>_weights.c
        self.externs: list[str] = []
        self.statics: list[str] = []
        self.ram: dict[tuple[int, str], str] = {}  # (step, key) -> RAM array the kernel reads (trained params)

    def arena(self, offset: int) -> str:
        return f"&{self.p}_arena[{offset}]"

    def arena_ref(self, name: str) -> str:
        return self.arena(self.plan.offset(name))

    def tensor_ref(self, name: str) -> str:
        """Pointer to a tensor in the arena, of its element type (int8_t * as it is)."""
        ref = self.arena(self.plan.offset(name))
        ctype = c_type(self.plan.graph.tensors[name])
        return ref if ctype == "int8_t" else f"({ctype} *){ref}"

    def const_array(self, ident: str, ctype: str, values: np.ndarray) -> str:
        self.weights.append(c_int_array(ctype, ident, values))
        self.externs.append(f"extern const {ctype} {ident}[{np.asarray(values).size}];")
        return ident

    def struct_fields(self, step: Step, ident: str) -> list[str]:
        fields = []
        for key, value in step.params.items():
            if (key in CONST_ARRAYS or key in CONST_ARRAYS_S16) and (value is None or isinstance(value, np.ndarray)):
                if value is None:
                    fields.append(f".{key} = NULL")
                else:
                    types = CONST_ARRAYS_S16 if step.kernel in S16_KERNELS else CONST_ARRAYS
                    flash = self.const_array(f"{ident}_{key}", types.get(key) or CONST_ARRAYS[key], value)
                    fields.append(f".{key} = " + self.ram.get((step.index, key), flash))
            elif key == "inner":
                self.statics.append(c_int_array("int32_t", f"{ident}_inner", value, storage="static"))
                fields.append(f".inner = {ident}_inner")
            elif key == "requant":
                rows = ["    {" + ", ".join(f".{k} = {c_int(v)}" for k, v in rq.items()) + "}," for rq in value]
                self.statics.append(f"static const mcf_requantize_params {ident}_requant[{len(value)}] = {{\n"
                                    + "\n".join(rows) + "\n};\n")
                fields.append(f".requant = {ident}_requant")
            elif isinstance(value, np.ndarray):
                fields.append(f".{key} = {{" + ", ".join(c_int(v) for v in value.reshape(-1)) + "}")
            else:
                fields.append(f".{key} = {c_int(value)}")
        return fields

    def function(self, step: Step) -> str:
        """The C function a layer calls (a backend may select a variant)."""
        return f"mcf_{step.kernel}"

    def scratch_argument(self, step: Step) -> str | None:
        """The scratch pointer passed after the output, if the function takes one."""
        return None

    def params_struct(self, step: Step) -> str:
        ident = f"{self.p}_l{step.index}"
        fields = self.struct_fields(step, ident)
        self.statics.append(f"static const {STRUCT[step.kernel]} {ident} = {{\n    "
                            + ",\n    ".join(fields) + ",\n};\n")
        return ident

    def comment(self, step: Step) -> str:
        return c_comment(f"{step.index} {step.name}: {describe_step(step, self.plan.graph)}")

    def patch_layer(self, step: Step, k: int) -> list[str]:
        """One layer of the per-patch stage: a block inside the tile loop that
        copies the layer's parameters, sets this tile's geometry from a table
        and calls the kernel (row by row for a pointwise op reading a larger
        patch)."""
        stage = self.plan.patch
        ident = self.params_struct(step)
        tiles = [t.geometry[k] if k < stage.split else t.copy for t in stage.tiles]
        first = tiles[0]
        if step.kernel == "copy_tile_s8":
            cols = COPY_FIELDS
        elif "in_h" in first:
            cols = WINDOW_FIELDS
        else:
            cols = None
        if cols is not None:
            rows = [[t[c] for c in cols] for t in tiles]
        else:
            count_key = "outer" if "outer" in first else "size"
            rows = [[t["patch_rows"], t[count_key], t["out_stride"]] + [v for pair in t["in_offsets"] for v in pair]
                    for t in tiles]
        width = len(rows[0])
        table = f"{ident}_tiles"
        body = ",\n".join("    {" + ", ".join(c_int(v) for v in r) + "}" for r in rows)
        self.statics.append(f"static const int32_t {table}[{len(rows)}][{width}] = {{\n{body},\n}};\n")
        ref = self.arena_ref if step.kernel == "copy_tile_s8" else self.tensor_ref  # the copy moves bytes
        out = ref(step.outputs[0])
        ins = [ref(t) for t in step.inputs]
        fn = self.function(step)
        scratch = self.scratch_argument(step)
        lines = ["        {", f"            const int32_t *g = {table}[tile];",
                 f"            {STRUCT[step.kernel]} p = {ident};"]
        if cols is not None:
            lines.append("            " + " ".join(f"p.{c} = g[{i}];" for i, c in enumerate(cols)))
            args = ", ".join([ins[0], out] + ([scratch] if scratch is not None else []))
            lines.append(f"            status |= {fn}(&p, {args}); /* {self.comment(step)} */")
        else:
            lines.append(f"            p.{count_key} = g[1];")
            lines.append("            for (row = 0; row < g[0]; ++row) {")
            args = [f"{a} + g[{3 + 2 * i}] + row * g[{4 + 2 * i}]" for i, a in enumerate(ins)]
            dst = f"{out} + row * g[2]"
            if step.kernel in CONCAT_KERNELS:
                ctype = c_type(self.plan.graph.tensors[step.inputs[0]])
                lines.append(f"                const {ctype} *in[{len(args)}];")
                lines += [f"                in[{i}] = {a};" for i, a in enumerate(args)]
                lines.append(f"                status |= {fn}(&p, in, {dst}); /* {self.comment(step)} */")
            else:
                lines.append(f"                status |= {fn}(&p, {', '.join(args)}, {dst}); /* {self.comment(step)} */")
            lines.append("            }")
        lines.append("        }")
        return lines

    def layer(self, step: Step) -> str:
        """Emit the parameter struct; return the call line."""
        ident = self.params_struct(step)
        outs = self.tensor_ref(step.outputs[0])
        ins = [self.tensor_ref(t) for t in step.inputs]
        fn = self.function(step)
        scratch = self.scratch_argument(step)
        if scratch is not None:
            outs = f"{outs}, {scratch}"
        if step.kernel == "depthwise_conv2d_s8_inplace":
            scratch = self.arena(self.plan.memory.scratch_offsets[step.index])
            call = f"{fn}(&{ident}, {outs}, {scratch})"
        elif step.kernel in CONCAT_KERNELS:
            ctype = c_type(self.plan.graph.tensors[step.inputs[0]])
            self.statics.append(f"static const {ctype} *const {ident}_inputs[{len(ins)}] = {{ "
                                + ", ".join(ins) + " };\n")
            call = f"{fn}(&{ident}, {ident}_inputs, {outs})"
        else:
            call = f"{fn}(&{ident}, {', '.join(ins)}, {outs})"
        return f"    status |= {call}; /* {self.comment(step)} */"


def used_headers(plan: Plan, headers: tuple[str, ...]) -> list[str]:
    """The emitter's public runtime headers this model includes (kernels_s16.h
    only when it has int16 layers)."""
    s16 = any(s.kernel in S16_KERNELS for s in plan.steps)
    return [h for h in headers if h != "kernels_s16.h" or s16]


def _patch_note(plan: Plan) -> str:
    st = plan.patch
    if st is None:
        return ""
    return (f" ({st.split} layers per patch on a {st.grid}x{st.grid} grid, {st.mac_overhead:.1%} extra MACs; "
            f"layer by layer the arena would be {st.layer_arena} bytes)")


def _header_comment(plan: Plan) -> str:
    g = plan.graph
    cfg = plan.config
    src = Path(g.source).name if g.source else g.name
    return (
        f"/*\n * Generated by mcuforge {__version__}. Do not edit.\n"
        f" * model: {c_comment(src)} ({g.source_format}), sha256 {g.source_hash or 'n/a'}\n"
        f" * schedule: {plan.schedule}{_patch_note(plan)}, kernels: {cfg.kernels}, training: {cfg.training}\n"
        f" * arena: {plan.arena_size} bytes, layers: {len(plan.steps)}, MACs: {plan.macs}, "
        f"constant bytes: {plan.weight_bytes}\n */\n")


def _shape_macros(P: str, what: str, shape, quant, ctype: str = "int8_t") -> list[str]:
    dims = ", ".join(str(d) for d in shape)
    return [
        f"#define {P}_{what}_TYPE {ctype}",
        f"#define {P}_{what}_SIZE {int(np.prod(shape))}",
        f"#define {P}_{what}_RANK {len(shape)}",
        f"#define {P}_{what}_SHAPE {{ {dims} }}",
        f"#define {P}_{what}_SCALE {c_float(float(quant.scale[0]))}",
        f"#define {P}_{what}_ZERO_POINT {c_int(int(quant.zero_point[0]))}",
    ]


def render(plan: Plan, emitter: type = _Emitter) -> dict[str, str]:
    """File name -> text for the model's own files."""
    e = emitter(plan)
    g = plan.graph
    p, P = e.p, e.P
    train = None
    if plan.training is not None:
        from .training import TrainingEmitter, ram_fields

        train = TrainingEmitter(e, plan)
        e.ram = ram_fields(plan)
    calls = []
    rest = plan.steps
    stream = plan.input_stream
    if plan.patch is not None:
        st = plan.patch
        per_patch, rest = plan.steps[:st.split + 1], plan.steps[st.split + 1:]
        calls += [f"    /* patch stage: layers 0-{st.split - 1} run on a {st.grid}x{st.grid} grid of tiles of "
                  f"{c_comment(st.tensor)} */",
                  f"    for (tile = 0; tile < {len(st.tiles)}; ++tile) {{"]
        if st.input_stream:
            rows = ",\n".join("    {" + ", ".join(str(t.read[k]) for k in ("y", "x", "h", "w")) + "}"
                               for t in st.tiles)
            e.statics.append(f"static const int32_t {p}_read_tiles[{len(st.tiles)}][4] = {{\n{rows},\n}};\n")
            buf = e.arena(plan.offset(st.buffers[plan.input]))
            calls += ["        {", f"            const int32_t *r = {p}_read_tiles[tile];",
                      f"            if (read(context, {buf}, r[0], r[1], r[2], r[3]) != 0) {{",
                      "                return -1;", "            }", "        }"]
        for k, s in enumerate(per_patch):
            calls += e.patch_layer(s, k)
        calls += ["    }", ""]
    calls += [e.layer(s) for s in rest]
    head = _header_comment(plan)
    train_functions = train.functions() if train else []

    x = g.tensors[plan.input]
    h = [head, f"#ifndef {P}_H", f"#define {P}_H", "", "#include <stdint.h>", "",
         "/* Bytes of the one static buffer holding every activation and scratch buffer. */",
         f"#define {P}_ARENA_SIZE {plan.arena_size}", f"#define {P}_NUM_LAYERS {len(plan.steps)}",
         f"#define {P}_MACS {plan.macs}", "",
         f"/* Input: {x.dtype}, channels last ({'NHWC' if len(x.shape) == 4 else 'flat'}); "
         "real = SCALE * (q - ZERO_POINT). */"]
    h += _shape_macros(P, "INPUT", x.shape, x.quant, c_type(x))
    for k, name in enumerate(g.inputs[1:], start=1):  # inputs 1, 2, ...: numbered as the outputs
        t = g.tensors[name]
        h += ["", f"/* Input {k}: {t.dtype}, channels last; {p}_input{k}() points to it. */"]
        h += _shape_macros(P, f"INPUT{k}", t.shape, t.quant, c_type(t))
    if len(g.inputs) > 1 or len(g.outputs) > 1:
        h += ["", f"#define {P}_NUM_INPUTS {len(g.inputs)}", f"#define {P}_NUM_OUTPUTS {len(g.outputs)}"]
    for k, o in enumerate(g.outputs):
        t = g.tensors[o]
        h += ["", f"/* Output {k}: {t.dtype}, channels last. */"]
        h += _shape_macros(P, "OUTPUT" if k == 0 else f"OUTPUT{k}", t.shape, t.quant, c_type(t))
    if train:
        h += train.header()
    h += ["", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
          f"/* The arena; define {P}_ARENA_ATTRIBUTE (e.g. a section) before compiling {p}.c to place it. */",
          f"extern int8_t {p}_arena[{P}_ARENA_SIZE];", "",
          f"int {p}_init(void);"]
    if stream:
        h += ["",
              "/* Input streaming (patch-based schedule): the whole input never sits in the arena.",
              f" * {p}_invoke_stream() calls read() once per tile; read() writes the h x w x C input",
              " * pixels starting at row y, column x (int8, channels last, rows of w pixels) to dst",
              " * and returns 0 (anything else aborts the inference). */",
              f"#define {P}_INPUT_STREAM 1",
              f"typedef int (*{p}_read_fn)(void *context, int8_t *dst, int32_t y, int32_t x, int32_t h, int32_t w);",
              f"int {p}_invoke_stream({p}_read_fn read, void *context);   /* 0 on success */"]
    else:
        h += [f"{c_type(x)} *{p}_input(void);   /* points into the arena */",
              f"int {p}_invoke(void);      /* 0 on success */"]
    for k in range(1, len(g.inputs)):
        h.append(f"{c_type(g.tensors[g.inputs[k]])} *{p}_input{k}(void);")
    h += [f"{c_type(g.tensors[g.outputs[0]])} *{p}_output(void);"]
    for k in range(1, len(g.outputs)):
        h.append(f"{c_type(g.tensors[g.outputs[k]])} *{p}_output{k}(void);")
    if train:
        h += [""] + train.prototypes()
    h += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P}_H */", ""]

    c = [head, f'#include "{p}.h"'] + [f'#include "mcuforge/{h}"' for h in used_headers(plan, e.headers)] + ["",
         f"#ifndef {P}_ARENA_ATTRIBUTE", "#if defined(__GNUC__)",
         f"#define {P}_ARENA_ATTRIBUTE __attribute__((aligned(16)))", "#else",
         f"#define {P}_ARENA_ATTRIBUTE", "#endif", "#endif", "",
         f"int8_t {p}_arena[{P}_ARENA_SIZE] {P}_ARENA_ATTRIBUTE;", "",
         f"/* Constant arrays, defined in {p}_weights.c. */"]
    c += e.externs + [""] + ([train.state_struct()] if train else []) + e.statics
    c += [f"int {p}_init(void)", "{"] + (train.init_lines() if train else []) + ["    return 0;", "}", ""]
    if not stream:
        c += [f"{c_type(x)} *{p}_input(void)", "{", f"    return {e.tensor_ref(plan.input)};", "}", ""]
        for k, name in enumerate(g.inputs[1:], start=1):
            c += [f"{c_type(g.tensors[name])} *{p}_input{k}(void)", "{", f"    return {e.tensor_ref(name)};", "}",
                  ""]
    for k, o in enumerate(g.outputs):
        c += [f"{c_type(g.tensors[o])} *{p}_output{'' if k == 0 else k}(void)", "{", f"    return {e.tensor_ref(o)};",
              "}", ""]
    loop_vars = []
    if plan.patch is not None:
        loop_vars = ["    int32_t tile;"] + (["    int32_t row;"] if any("for (row" in line for line in calls) else [])
    signature = f"int {p}_invoke_stream({p}_read_fn read, void *context)" if stream else f"int {p}_invoke(void)"
    c += [signature, "{", "    int status = MCF_OK;"] + loop_vars + [""] + calls
    c += ["", "    return status == MCF_OK ? 0 : -1;", "}", ""]
    c += train_functions

    w = [head, "#include <stdint.h>", "", f"/* Weights, biases and requantization multipliers of {p}. */", ""]
    w += e.weights
    return {f"{p}.h": "\n".join(h), f"{p}.c": "\n".join(c), f"{p}_weights.c": "\n".join(w)}


def generate(plan: Plan, outdir: Path, emitter: type = _Emitter, sources=runtime_sources) -> list[Path]:
    outdir = Path(outdir)
    written = []
    for fname, text in render(plan, emitter).items():
        path = outdir / fname
        path.write_text(text)
        written.append(path)
    rt = outdir / RUNTIME_SUBDIR
    (rt / "include" / "mcuforge").mkdir(parents=True, exist_ok=True)
    (rt / "src").mkdir(parents=True, exist_ok=True)
    for h in used_headers(plan, emitter.headers):
        shutil.copyfile(RUNTIME_DIR / "include" / "mcuforge" / h, rt / "include" / "mcuforge" / h)
        written.append(rt / "include" / "mcuforge" / h)
    private_headers = sorted(h.name for h in (RUNTIME_DIR / "src").glob("*.h"))
    for f in sources(plan) + private_headers:
        shutil.copyfile(RUNTIME_DIR / "src" / f, rt / "src" / f)
        written.append(rt / "src" / f)
    return written


def c_sources(outdir: Path, name: str) -> list[Path]:
    """Every C file of a generated output directory."""
    outdir = Path(outdir)
    return [outdir / f"{name}.c", outdir / f"{name}_weights.c"] + sorted((outdir / RUNTIME_SUBDIR / "src").glob("*.c"))


def include_dirs(outdir: Path) -> list[Path]:
    outdir = Path(outdir)
    return [outdir, outdir / RUNTIME_SUBDIR / "include"]


BACKEND = Backend(name="portable", generate=generate, description="portable C99 kernels, bit-exact with TFLM reference",
                  runtime_sources=runtime_sources)
