"""C for the training step: the state struct (trained parameters in RAM),
`<name>_train_step`, `<name>_train_state`, the init copies and the header
block. Called by the portable backend's render() for a training plan."""
from __future__ import annotations

import numpy as np

from .cwriter import c_comment, c_float, c_int
from ..plan import Plan
from ..state_record import HEADER_SIZE, c_initializer, identity
from ..training.autodiff import STATE_COPIES

STRUCTS = {
    "train_loss": "mcf_train_loss_params",
    "train_conv_input_grad": "mcf_train_conv_params",
    "train_conv_update": "mcf_train_conv_params",
    "train_conv_apply": "mcf_train_conv_params",
    "train_mask": "mcf_train_mask_params",
    "train_pool_backward": "mcf_train_pool_params",
    "train_grad_sum": "mcf_train_sum_params",
}


def state_name(plan: Plan) -> str:
    return f"{plan.name}_train_state_data"


def field_name(layer: int, what: str) -> str:
    return f"layer{layer}_{what}"


def ram_fields(plan: Plan) -> dict[tuple[int, str], str]:
    """(forward step index, params key) -> the RAM array the forward kernel reads."""
    st = state_name(plan)
    out = {}
    for t in plan.training.layers:
        if t.bias:
            out[(t.step, "bias")] = f"{st}.{field_name(t.layer, 'bias')}"
        if t.channels:
            out[(t.step, "filter")] = f"{st}.{field_name(t.layer, 'filter')}"
    return out


def _float_array(name: str, values) -> str:
    vals = [c_float(float(v)) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    rows = ["    " + ", ".join(vals[i:i + 8]) + "," for i in range(0, len(vals), 8)]
    return f"const float {name}[{len(vals)}] = {{\n" + "\n".join(rows) + "\n};\n"


class TrainingEmitter:
    def __init__(self, emitter, plan: Plan):
        self.e = emitter
        self.plan = plan
        self.tp = plan.training
        self.p = plan.name
        self.exp = {g: k for k, g in enumerate(self.tp.grads)}
        self.structs: dict[str, str] = {}  # params key -> ident (one struct per layer)
        self.layer_of = {t.name: t for t in self.tp.layers}

    def arena(self, tensor: str, ctype: str) -> str:
        a = self.e.arena(self.plan.offset(tensor))
        return a if ctype == "int8_t" else f"({ctype} *){a}"

    def params(self, step) -> str:
        key = step.name.rsplit(":", 1)[0] if step.kernel.startswith("train_conv") else step.name
        if key in self.structs:
            return self.structs[key]
        ident = f"{self.p}_t{step.index}"
        fields = []
        for k, v in step.params.items():
            if v is None:
                fields.append(f".{k} = NULL")
            elif isinstance(v, np.ndarray):
                fields.append(f".{k} = " + self.e.const_array(f"{ident}_{k}", "int32_t", v))
            else:
                fields.append(f".{k} = {c_int(v)}")
        self.e.statics.append(f"static const {STRUCTS[step.kernel]} {ident} = {{\n    "
                              + ",\n    ".join(fields) + ",\n};\n")
        self.structs[key] = ident
        return ident

    def grad(self, t: str) -> tuple[str, str]:
        return self.arena(t, "int16_t"), f"e[{self.exp[t]}]"

    def state_ptr(self, t, what: str) -> str:
        present = {"bias": t.bias, "velocity": self.tp.momentum > 0}.get(what, t.channels)
        return f"{state_name(self.plan)}.{field_name(t.layer, what)}" if present else "NULL"

    def call(self, s) -> str:
        fn = f"mcf_{s.kernel}"
        note = f" /* {c_comment(s.name)} */"
        if s.kernel == "softmax_s8":
            return self.e.layer(s)
        ident = self.params(s)
        if s.kernel == "train_loss":
            g = self.arena(s.outputs[0], "int16_t")
            table = f"{self.p}_loss_table"
            self.e.weights.append(_float_array(table, self.tp.loss_table))
            self.e.externs.append(f"extern const float {table}[{self.tp.loss_table.size}];")
            return (f"    status |= {fn}(&{ident}, {self.arena(s.inputs[0], 'int8_t')}, label, {g}, "
                    f"&e[{self.exp[s.outputs[0]]}], &label_prob);{note}\n"
                    f"    if (loss != NULL) {{\n        *loss = {table}[label_prob]; /* -ln(label_prob / 256) */\n    }}")
        if s.kernel in ("train_mask", "train_pool_backward"):
            gin, ein = self.grad(s.inputs[0])
            y = self.arena(s.inputs[1], "int8_t") if len(s.inputs) > 1 else "NULL"
            gout, _ = self.grad(s.outputs[0])
            return f"    status |= {fn}(&{ident}, {gin}, {ein}, {y}, {gout}, &e[{self.exp[s.outputs[0]]}]);{note}"
        if s.kernel == "train_grad_sum":
            a, ea = self.grad(s.inputs[0])
            b, eb = self.grad(s.inputs[1])
            out, _ = self.grad(s.outputs[0])
            return f"    status |= {fn}(&{ident}, {a}, {ea}, {b}, {eb}, {out}, &e[{self.exp[s.outputs[0]]}]);{note}"
        fwd_name = s.name.rsplit(":", 1)[0]
        fwd = next(f for f in self.plan.steps if f.name == fwd_name)
        t = self.layer_of.get(fwd_name)
        if s.kernel == "train_conv_input_grad":
            gin, ein = self.grad(s.inputs[0])
            filt = self.state_ptr(t, "filter") if t is not None and t.channels else f"{self.p}_l{fwd.index}_filter"
            gout, _ = self.grad(s.outputs[0])
            return (f"    status |= {fn}(&{ident}, {gin}, {ein}, {self.arena(s.inputs[1], 'int8_t')}, {filt}, "
                    f"{gout}, &e[{self.exp[s.outputs[0]]}]);{note}")
        if s.kernel == "train_conv_update":
            gin, ein = self.grad(s.inputs[0])
            x = self.arena(s.inputs[2], "int8_t") if len(s.inputs) > 2 else "NULL"
            delta = self.arena(s.outputs[0], "int32_t") if s.outputs else "NULL"
            return (f"    status |= {fn}(&{ident}, {gin}, {ein}, {self.arena(s.inputs[1], 'int8_t')}, {x}, "
                    f"{self.state_ptr(t, 'fraction')}, {self.state_ptr(t, 'filter')}, {self.state_ptr(t, 'bias')}, "
                    f"{self.state_ptr(t, 'velocity')}, {delta});{note}")
        if s.kernel == "train_conv_apply":
            return (f"    status |= {fn}(&{ident}, {self.arena(s.inputs[0], 'int32_t')}, "
                    f"{self.state_ptr(t, 'fraction')}, {self.state_ptr(t, 'filter')}, "
                    f"{self.state_ptr(t, 'bias')}, {self.state_ptr(t, 'velocity')});{note}")
        raise AssertionError(s.kernel)

    def state_struct(self) -> str:
        tp = self.tp
        lines = [f"/* Trained parameters in RAM ({tp.state_bytes} bytes): what {self.p}_train_state() returns. */",
                 "static struct {"]
        used = 0
        for layer, what, ctype, n in tp.state_layout:
            lines.append(f"    {ctype} {field_name(layer, what)}[{n}];")
            used += n * {"int32_t": 4, "int16_t": 2, "int8_t": 1}[ctype]
        if tp.state_bytes > used:
            lines.append(f"    int8_t padding[{tp.state_bytes - used}];")
        lines.append(f"}} {state_name(self.plan)};")
        lines.append(f"typedef char {self.p}_train_state_size_check[sizeof({state_name(self.plan)}) == "
                     f"{tp.state_bytes} ? 1 : -1];")
        return "\n".join(lines) + "\n"

    def init_lines(self) -> list[str]:
        st = state_name(self.plan)
        step_of = {t.layer: self.plan.steps[t.step].index for t in self.tp.layers}
        out = ["    {", "        int32_t i;"]
        for layer, what, _, n in self.tp.state_layout:
            value = f"{self.p}_l{step_of[layer]}_{what}[i]" if what in STATE_COPIES else "0"
            out += [f"        for (i = 0; i < {n}; ++i) {{", f"            {st}.{field_name(layer, what)}[i] = {value};",
                    "        }"]
        out.append("    }")
        return out

    @property
    def stream(self) -> bool:
        return self.plan.input_stream

    def functions(self) -> list[str]:
        p, P = self.p, self.p.upper()
        calls = [self.call(s) for s in self.tp.steps]
        signature, invoke = f"int {p}_train_step(int label, float *loss)", f"{p}_invoke()"
        if self.stream:
            signature = f"int {p}_train_step_stream({p}_read_fn read, void *context, int label, float *loss)"
            invoke = f"{p}_invoke_stream(read, context)"
        return [signature, "{", "    int status = MCF_OK;",
                f"    int32_t e[{max(1, len(self.tp.grads))}]; /* exponents of the gradient tensors: "
                "dL/dt = g * 2^e */", "    int32_t label_prob = 0;", "",
                f"    if (label < 0 || label >= {P}_TRAIN_CLASSES) {{", "        return -1;", "    }",
                f"    if ({invoke} != 0) {{", "        return -1;", "    }"] + calls + [
                "", "    return status == MCF_OK ? 0 : -1;", "}", "",
                f"void *{p}_train_state(void)", "{", f"    return &{state_name(self.plan)};", "}", "",
                f"static const uint8_t {p}_state_identity[32] = {P}_TRAIN_STATE_SHA256;", "",
                f"int32_t {p}_state_save(uint8_t *record, uint32_t record_size, uint32_t generation)", "{",
                f"    return mcf_state_pack({p}_state_identity, generation, &{state_name(self.plan)}, "
                f"{P}_TRAIN_STATE_SIZE, record, record_size);", "}", "",
                f"int {p}_state_restore(const uint8_t *record, uint32_t record_size)", "{",
                f"    return mcf_state_unpack({p}_state_identity, record, record_size, &{state_name(self.plan)}, "
                f"{P}_TRAIN_STATE_SIZE);", "}", "",
                f"int {p}_state_newest(const uint8_t *const records[], const uint32_t record_sizes[], int count, "
                "int status[])", "{",
                f"    return mcf_state_newest({p}_state_identity, records, record_sizes, count, {P}_TRAIN_STATE_SIZE, "
                "status);", "}", ""]

    def header(self) -> list[str]:
        tp, P, p = self.tp, self.p.upper(), self.p
        policy = tp.policy.describe(tp.weight_layer_names)
        lines = ["", "/* On-device training. Policy: " + c_comment(policy) + f" (from {tp.policy.source}).",
                 f" * SGD, learning rate {tp.learning_rate:g}, momentum {tp.momentum:g}, quantization-aware scaling "
                 f"{'on' if tp.qas else 'off'}, operator reordering {'on' if tp.reorder else 'off'}.",
                 f" * RAM: the arena ({P}_ARENA_SIZE, covers the training step) + the trained state "
                 f"{tp.state_bytes} bytes ({tp.state_breakdown()}).",
                 (f" * {p}_train_step_stream() runs {p}_invoke_stream() (the input read tile by tile), then the "
                  "backward pass," if self.stream else
                  f" * {p}_train_step() runs {p}_invoke() on the input in {p}_input(), then the backward pass,"),
                 " * and updates the state; inference always uses the current state. Save",
                 f" * {P}_TRAIN_STATE_SIZE bytes at {p}_train_state() to keep what was learned; copy them",
                 f" * back after {p}_init() to restore it."]
        if tp.gains:
            lines.append(" * Chosen by contribution analysis: " + c_comment(tp.gains.get("summary", "")))
        lines += [" */", f"#define {P}_TRAINING 1", f"#define {P}_TRAIN_STATE_SIZE {tp.state_bytes}",
                  f"#define {P}_TRAIN_CLASSES {tp.classes}",
                  f"#define {P}_TRAIN_LEARNING_RATE {c_float(tp.learning_rate)}",
                  f"#define {P}_TRAIN_MOMENTUM {c_float(tp.momentum)}",
                  "/* The trained state as a record to keep across resets (mcf_state.c): its identity is the",
                  " * sha256 of the model file's sha256 and the state's layout; a record of another model or",
                  f" * build, or a torn one, is refused by {p}_state_restore(). */",
                  f"#define {P}_TRAIN_STATE_SHA256 {c_initializer(identity(self.plan))}",
                  f"#define {P}_STATE_RECORD_SIZE ({tp.state_bytes} + {HEADER_SIZE})"]
        return lines

    def prototypes(self) -> list[str]:
        p = self.p
        train = (f"int {p}_train_step_stream({p}_read_fn read, void *context, int label, float *loss);" if self.stream
                 else f"int {p}_train_step(int label, float *loss);")
        return ["/* 0 on success, -1 on a bad label (or a failed read); *loss = cross-entropy of the forward",
                " * pass. */", train,
                f"void *{p}_train_state(void);  /* {self.p.upper()}_TRAIN_STATE_SIZE bytes */",
                f"/* The state as a record of {self.p.upper()}_STATE_RECORD_SIZE bytes: bytes written, or < 0.",
                " * `generation` numbers the saves: with two slots, mcf_state_newest() picks the newer. */",
                f"int32_t {p}_state_save(uint8_t *record, uint32_t record_size, uint32_t generation);",
                "/* Restores a record saved by a build of this very model and policy: 0, or < 0 (an",
                " * MCF_STATE_ERR_*, mcf_state_error() says which) leaving the state untouched. */",
                f"int {p}_state_restore(const uint8_t *record, uint32_t record_size);",
                "/* Of `count` slots, the valid record of this model with the newest generation (-1: none);",
                " * status[i] says why slot i is not usable (an MCF_STATE_ERR_*). */",
                f"int {p}_state_newest(const uint8_t *const records[], const uint32_t record_sizes[], int count, "
                "int status[]);"]
