"""Cortex-M4 cycle model: every executed instruction of ``<name>_invoke``
under QEMU, priced with the Cortex-M4 Technical Reference Manual's cycle table.

How it works (the rules and their source are in docs/speed.md):

1. The image is built with marks: the harness calls ``mcuforge_mark(0)`` and
   ``mcuforge_mark(1)`` around the invoke and, in a profiling build, the
   model's C calls ``mcuforge_mark(2 + 2 * layer)`` / ``(3 + 2 * layer)``
   around every kernel call. A mark reads ``mcuforge_marks[id]``.
2. QEMU runs it with a TCG plugin (``targets/cycle_trace.c``, compiled here
   with the host's gcc; Debian's QEMU 7.2 loads plugins but ships no
   header, so the plugin declares the API it uses). The plugin counts, per
   instruction address, executions, taken exits (the next instruction run
   was not the one after it) and loads from flash, in one segment per mark.
3. Here each address is disassembled (``arm-none-eabi-objdump``) and priced:
   the costs depend only on the instruction, on whether it was left by a
   jump, and on the instruction before it in memory (a load after an
   independent load pipelines), so per-address counts price the run exactly
   as a per-instruction trace would.

The mark function and the calls to it are not priced. Cortex-M4 is the
only core priced; other targets get exact instruction counts.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import qemu
from ..errors import McuforgeError
from ..plan import Plan

PLUGIN_SOURCE = qemu.TARGETS_DIR / "cycle_trace.c"
OBJDUMP = "arm-none-eabi-objdump"
HOST_CC = "gcc"
FLASH_RANGE = (0x0000_0000, 0x0040_0000)  # mps2.ld: FLASH (4 MiB SSRAM1 standing in for flash)
MARK_FUNCTION = "mcuforge_mark"
MARK_ARRAY = "mcuforge_marks"
EXCLUDED_FUNCTIONS = (MARK_FUNCTION, "SysTick_Handler")
INVOKE_START, INVOKE_END = 0, 1
PRICED_TARGETS = ("qemu-cortex-m4",)

CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
SINGLE_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht", "ldrex",
                "ldrexb", "ldrexh", "vldr"}
SINGLE_STORES = {"str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh", "vstr"}
DOUBLE = {"ldrd", "strd"}
MULTIPLE = {"ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia", "stmea", "stmdb", "stmfd", "push", "pop",
            "vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"}
BRANCHES = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
TABLE_BRANCHES = {"tbb", "tbh"}
DIVIDES = {"sdiv", "udiv"}
FP_LONG = {"vdiv", "vsqrt"}  # 14 cycles (Cortex-M4 TRM, FPU instruction set table)
KNOWN = SINGLE_LOADS | SINGLE_STORES | DOUBLE | MULTIPLE | BRANCHES | TABLE_BRANCHES | DIVIDES | FP_LONG
REGISTER_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12"}
REGISTER = re.compile(r"\b(r\d{1,2}|sp|lr|pc|ip|fp|sl|sb|[sd]\d{1,2})\b")


@dataclass(frozen=True)
class CoreModel:
    """The priced core. branch_refill is the TRM's P (1 to 3; 2 unless said),
    divide_cycles the cost of SDIV/UDIV (2 to 12; 12, the bound),
    flash_wait_states the board's flash latency (0: ideal memory)."""
    name: str = "Cortex-M4"
    branch_refill: int = 2
    divide_cycles: int = 12
    flash_wait_states: int = 0


@dataclass(frozen=True)
class Instruction:
    address: int
    size: int
    mnemonic: str  # base, without .w/.n and condition
    operands: str
    kind: str  # load, store, double, multiple, branch, table, divide, fp_long, other
    destinations: frozenset = frozenset()  # registers a single load writes
    address_registers: frozenset = frozenset()  # registers a single load's address reads
    registers: int = 0  # registers moved by a multiple / double
    target: int | None = None  # direct branch target

    @property
    def writes_pc(self) -> bool:
        """Whether the instruction can move the flow elsewhere: a branch, a
        table branch, a load or pop of the PC, or an ALU write of the PC."""
        if self.kind in ("branch", "table"):
            return True
        if self.kind == "multiple":
            return self.mnemonic.startswith(("ldm", "pop")) and "pc" in _registers(self.operands)
        if self.kind == "load":
            return "pc" in self.destinations
        return self.kind == "other" and self.operands.replace(" ", "").startswith("pc,")


def base_mnemonic(mnemonic: str) -> str:
    """'ldr.w' -> 'ldr', 'ldrbeq' -> 'ldrb', 'bne' -> 'b', 'pople' -> 'pop' (conditions of IT blocks)."""
    m = mnemonic.split(".")[0].lower()
    if m in KNOWN:
        return m
    if len(m) > 2 and m[-2:] in CONDITIONS and m[:-2] in KNOWN:
        return m[:-2]
    return m


def _registers(text: str) -> frozenset:
    return frozenset(REGISTER_ALIASES.get(r, r) for r in REGISTER.findall(text))


def _list_size(operands: str) -> int:
    """Words moved by a register list: '{r4, r5, lr}' -> 3, '{d8-d15}' -> 16."""
    inside = operands[operands.index("{") + 1:operands.index("}")]
    words = 0
    for part in inside.split(","):
        part = part.strip()
        m = re.fullmatch(r"([rsd])(\d+)-[rsd](\d+)", part)
        count = int(m.group(3)) - int(m.group(2)) + 1 if m else 1
        words += count * (2 if part.startswith("d") else 1)
    return words


def classify(address: int, size: int, mnemonic: str, operands: str) -> Instruction:
    m = base_mnemonic(mnemonic)
    operands = operands.split("@")[0].split(";")[0].strip()
    if m in SINGLE_LOADS:
        head, _, addr = operands.partition("[")
        return Instruction(address, size, m, operands, "load", _registers(head), _registers(addr.split("]")[0]))
    if m in SINGLE_STORES:
        return Instruction(address, size, m, operands, "store")
    if m in DOUBLE:
        return Instruction(address, size, m, operands, "double", registers=2)
    if m in MULTIPLE:
        return Instruction(address, size, m, operands, "multiple", registers=_list_size(operands))
    if m in BRANCHES:
        target = re.match(r"(?:\w+,\s*)?([0-9a-f]+)\s*<", operands)
        return Instruction(address, size, m, operands, "branch", target=int(target.group(1), 16) if target else None)
    if m in TABLE_BRANCHES:
        return Instruction(address, size, m, operands, "table")
    if m in DIVIDES:
        return Instruction(address, size, m, operands, "divide")
    if m in FP_LONG:
        return Instruction(address, size, m, operands, "fp_long")
    return Instruction(address, size, m, operands, "other")


LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f]{4}(?: [0-9a-f]{4})?)\s*\t(\S+)(?:\t(.*))?$")
SYMBOL = re.compile(r"^([0-9a-f]{8}) <(.+)>:$")


def disassemble(elf: Path) -> tuple[dict[int, Instruction], dict[str, tuple[int, int]]]:
    """Every Thumb instruction of the image's code by address, and each function's [start, end)."""
    from elftools.elf.elffile import ELFFile

    res = subprocess.run([OBJDUMP, "-d", "-w", str(elf)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise McuforgeError(f"{OBJDUMP} -d {elf} failed: {res.stderr.strip()}")
    code: dict[int, Instruction] = {}
    for line in res.stdout.splitlines():
        m = LINE.match(line)
        if m and not m.group(3).startswith("."):
            size = 2 * len(m.group(2).split())
            code[int(m.group(1), 16)] = classify(int(m.group(1), 16), size, m.group(3), m.group(4) or "")
    functions = {}
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab else ():
            if sym["st_info"]["type"] == "STT_FUNC":
                start = sym["st_value"] & ~1
                functions[sym.name] = (start, start + sym["st_size"])
            elif sym.name == MARK_ARRAY:
                functions[sym.name] = (sym["st_value"], sym["st_value"] + sym["st_size"])
    return code, functions


# ---- the plugin ------------------------------------------------------------------------------------------

def build_plugin(directory: Path) -> Path:
    """Compile the TCG plugin with the host's gcc into `directory` (once per source version)."""
    source = PLUGIN_SOURCE.read_bytes()
    so = Path(directory) / f"cycle_trace-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if so.is_file():
        return so
    if shutil.which(HOST_CC) is None:
        raise McuforgeError(f"the cycle model needs {HOST_CC} on the host to build its QEMU plugin")
    Path(directory).mkdir(parents=True, exist_ok=True)
    tmp = so.with_suffix(".tmp")
    res = subprocess.run([HOST_CC, "-shared", "-fPIC", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror",
                          str(PLUGIN_SOURCE), "-o", str(tmp)], capture_output=True, text=True)
    if res.returncode != 0:
        raise McuforgeError(f"building the QEMU cycle plugin failed:\n{res.stderr.strip()}")
    tmp.replace(so)
    return so


@dataclass
class Segment:
    label: int  # the mark that opened it (-1: before the first mark)
    counts: dict[int, tuple[int, int, int]]  # address -> (executions, taken, flash loads)


def read_trace(path: Path) -> list[Segment]:
    segments: list[Segment] = []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f[0] == "segment":
            segments.append(Segment(int(f[2]), {}))
        else:
            segments[-1].counts[int(f[0], 16)] = (int(f[1]), int(f[2]), int(f[3]))
    return segments


def trace(target: qemu.Target, elf: Path, data: bytes, plugin: Path, timeout: float = 600
          ) -> tuple[str, bytes, list[Segment]]:
    """Run the marked image under the plugin; returns (console, output file, segments)."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        e = ELFFile(f)
        text = e.get_section_by_name(".text")
        lo, hi = text["sh_addr"], text["sh_addr"] + text["sh_size"]
        marks = next((s for s in e.get_section_by_name(".symtab").iter_symbols() if s.name == MARK_ARRAY), None)
    if marks is None:
        raise McuforgeError(f"{elf}: no {MARK_ARRAY} (the image was not built with marks)")
    with tempfile.TemporaryDirectory(prefix="mcuforge-cycles-") as tmp:
        out = Path(tmp) / "trace.txt"
        args = [f"out={out}", f"lo={lo:#x}", f"hi={hi:#x}", f"flash_lo={FLASH_RANGE[0]:#x}",
                f"flash_hi={FLASH_RANGE[1]:#x}", f"marks_lo={marks['st_value']:#x}",
                f"marks_hi={marks['st_value'] + marks['st_size']:#x}"]
        console, raw = qemu.run_image(target, elf, data, timeout, ["-plugin", f"{plugin}," + ",".join(args)])
        return console, raw, read_trace(out)


# ---- pricing ---------------------------------------------------------------------------------------------

CATEGORIES = ("load", "store", "double", "multiple", "branch", "table", "divide", "fp_long", "other")


@dataclass
class Cost:
    instructions: int = 0
    cycles: float = 0.0
    by_kind: dict[str, list] = field(default_factory=dict)  # kind -> [instructions, cycles]
    flash_data_words: int = 0

    def add(self, other: "Cost") -> None:
        self.instructions += other.instructions
        self.cycles += other.cycles
        self.flash_data_words += other.flash_data_words
        for k, (n, c) in other.by_kind.items():
            acc = self.by_kind.setdefault(k, [0, 0.0])
            acc[0] += n
            acc[1] += c


def excluded_addresses(code: dict[int, Instruction], functions: dict[str, tuple[int, int]]) -> set[int]:
    """The mark function, the calls to it and the SysTick wrap handler: not part of what is priced."""
    out = set()
    ranges = [functions[f] for f in EXCLUDED_FUNCTIONS if f in functions]
    mark = functions.get(MARK_FUNCTION, (None,))[0]
    for a, ins in code.items():
        if any(lo <= a < hi for lo, hi in ranges) or (ins.mnemonic == "bl" and ins.target == mark):
            out.add(a)
    return out


def price(counts: dict[int, tuple[int, int, int]], code: dict[int, Instruction], model: CoreModel,
          excluded: set[int] | frozenset = frozenset()) -> Cost:
    """Cycles of one segment's counts (Cortex-M4 TRM table 3-1, the rules of docs/speed.md).

    A load pipelines on the runs that reached it by falling through from an
    independent load just before it: the earlier load's runs less its taken
    exits (a segment starts after a mark's return, never mid-chain). Only an
    instruction that writes the PC is charged for taken exits: the trace
    also reports the flow leaving the instruction before a 1 KB page's last
    halfword (QEMU ends its translation blocks there), which the core does
    not see."""
    P, W = model.branch_refill, model.flash_wait_states
    cost = Cost()
    for a, (runs, taken, flash) in counts.items():
        if a in excluded or runs == 0:
            continue
        ins = code.get(a)
        if ins is None:
            raise McuforgeError(f"the trace ran an instruction at {a:#x} that the disassembly does not hold")
        taken = taken if ins.writes_pc else 0
        pipelined = 0
        kind = ins.kind
        if kind == "load":
            base = 2
            before = code.get(a - 2) or code.get(a - 4)
            if before is not None and before.address + before.size == a and before.kind == "load" \
                    and not (before.destinations & ins.address_registers):
                b_runs, b_taken, _ = counts.get(before.address, (0, 0, 0))
                pipelined = min(runs, max(0, b_runs - (b_taken if before.writes_pc else 0)))
        elif kind == "store":
            base = 2
        elif kind in ("double", "multiple"):
            base = 1 + ins.registers
        elif kind == "table":
            base = 2
        elif kind == "divide":
            base = model.divide_cycles
        elif kind == "fp_long":
            base = 14
        else:
            base = 1
        fetch = (1 + W) * ins.size / 4  # the bus brings one 32-bit word per 1 + W cycles
        cycles = (runs - pipelined) * max(base, fetch) + pipelined * max(1, fetch) + taken * (P + W) + flash * W
        cost.instructions += runs
        cost.cycles += cycles
        cost.flash_data_words += flash
        acc = cost.by_kind.setdefault(kind, [0, 0.0])
        acc[0] += runs
        acc[1] += cycles
    return cost


# ---- a model's run ---------------------------------------------------------------------------------------

def marked_source(text: str) -> str:
    """The model's C with mcuforge_mark(2 + 2 * layer) / (3 + 2 * layer) around every kernel call."""
    out = ["#include <stdint.h>", "void mcuforge_mark(int32_t id);"]
    for line in text.splitlines():
        m = qemu.CALL_LINE.match(line)
        if m:
            pad, call, layer, comment = m.groups()
            line = (f"{pad}{{ mcuforge_mark({2 + 2 * int(layer)}); status |= {call}; "
                    f"mcuforge_mark({3 + 2 * int(layer)}); }} /* {layer} {comment}*/")
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class CycleRun:
    target: str
    model: CoreModel
    total: Cost  # the first invoke
    layers: list[Cost] | None  # profiling build: per layer (kernel calls only)
    glue: Cost | None  # profiling build: the invoke outside the kernel calls (marks excluded)
    outputs: list[np.ndarray]
    counts: list[dict] = field(default_factory=list, repr=False)  # segments of the first invoke
    code: dict = field(default_factory=dict, repr=False)
    excluded: set = field(default_factory=set, repr=False)

    @property
    def priced(self) -> bool:
        return self.target in PRICED_TARGETS

    def reprice(self, model: CoreModel) -> "CycleRun":
        """The same run priced with another model (wait states, refill), without running again."""
        layers, glue, total = _sum_segments(self.counts, self.code, self.excluded, model,
                                            self.layers is not None and len(self.layers))
        return CycleRun(self.target, model, total, layers, glue, self.outputs, self.counts, self.code,
                        self.excluded)


def _sum_segments(segments: list[Segment], code, excluded, model: CoreModel, n_layers: int):
    total, glue = Cost(), Cost()
    layers = [Cost() for _ in range(n_layers)] if n_layers else None
    for s in segments:
        c = price(s.counts, code, model, excluded)
        total.add(c)
        if s.label >= 2 and s.label % 2 == 0 and layers is not None:
            layers[(s.label - 2) // 2].add(c)
        else:
            glue.add(c)
    return layers, (glue if layers is not None else None), total


def first_invoke(segments: list[Segment]) -> list[Segment]:
    """The segments from the first mark 0 up to the first mark 1."""
    start = next((i for i, s in enumerate(segments) if s.label == INVOKE_START), None)
    if start is None:
        raise McuforgeError("the cycle trace holds no invoke (no mark 0)")
    end = next((i for i in range(start, len(segments)) if segments[i].label == INVOKE_END), len(segments))
    return segments[start:end]


def run(plan: Plan, outdir: Path, inputs: np.ndarray, target: str = "qemu-cortex-m4", opt: str = "-O2",
        profile: bool = False, model: CoreModel | None = None, workdir: Path | None = None,
        timeout: float = 600) -> CycleRun:
    """Build the model with marks (per layer too when profile), run the first
    input under the plugin and price the first invoke."""
    reason = qemu.tools_missing_reason()
    if reason:
        raise McuforgeError(reason)
    t = qemu.get_target(target)
    model = model or CoreModel()
    x = np.ascontiguousarray(inputs, dtype=plan.graph.tensors[plan.input].dtype)[:1]  # int8, or int16 (16x8)
    with tempfile.TemporaryDirectory(prefix="mcuforge-cycles-") as tmp:
        build = Path(workdir or tmp)
        marks = 2 + 2 * len(plan.steps)
        elf = qemu.build(plan, outdir, build, t, opt=opt, harness=qemu.harness_source(plan, marks=marks),
                         model_source=marked_source if profile else None)
        plugin = build_plugin(build)
        _console, raw, segments = trace(t, elf, x.tobytes(), plugin, timeout)
        code, functions = disassemble(elf)
    from . import hostrun

    outputs = hostrun.split_outputs(plan, np.frombuffer(raw, dtype=np.int8), 1, f"on {t.name}")
    invoke = first_invoke(segments)
    excluded = excluded_addresses(code, functions)
    layers, glue, total = _sum_segments(invoke, code, excluded, model, len(plan.steps) if profile else 0)
    return CycleRun(t.name, model, total, layers, glue, outputs, invoke, code, excluded)


def profile_table(plan: Plan, result: CycleRun) -> tuple[list[dict], str]:
    """Per layer: kernel, MACs, instructions, cycles (Cortex-M4), MAC/cycle, share of cycles."""
    from ..ops import describe_step
    from ..registry import backend_for

    backend = backend_for(plan.config.kernels)
    priced = result.priced
    total = result.total
    rows = []
    for s, c in zip(plan.steps, result.layers or []):
        fn, fallback = backend.kernel_of(plan, s)
        rows.append({"index": s.index, "name": s.name, "description": describe_step(s, plan.graph),
                     "function": fn, "portable": fallback, "macs": s.macs, "instructions": c.instructions,
                     "cycles": round(c.cycles) if priced else None,
                     "macs_per_cycle": round(s.macs / c.cycles, 3) if priced and c.cycles else None,
                     "macs_per_instruction": round(s.macs / c.instructions, 3) if c.instructions else None})
    head = ("#", "layer", "kernel", "MACs", "instructions", "cycles", "MAC/cycle", "share")
    table = [head]
    unit = total.cycles if priced else total.instructions

    def cells(index, name, fn, macs, c: Cost):
        return (index, name, fn, f"{macs:,}", f"{c.instructions:,}",
                f"{round(c.cycles):,}" if priced else "-",
                f"{macs / c.cycles:.2f}" if priced and c.cycles and macs else "-",
                f"{100 * (c.cycles if priced else c.instructions) / (unit or 1):.1f}%")

    for s, r, c in zip(plan.steps, rows, result.layers or []):
        table.append(cells(str(r["index"]), r["name"][:28], r["function"] + (
            " (portable)" if r["portable"] and plan.config.kernels != "portable" else ""), r["macs"], c))
    if result.glue is not None:
        table.append(cells("", "(invoke outside the kernels)", "", 0, result.glue))
    macs = sum(s.macs for s in plan.steps)
    table.append(cells("", "invoke", "", macs, total))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i in (0, 3, 4, 5, 6, 7) else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths))).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    m = result.model
    if priced:
        note = (f"({result.target}: every executed instruction of the first invoke, priced with the {m.name} "
                f"TRM cycle table: pipeline refill P = {m.branch_refill}, divide {m.divide_cycles}, "
                f"{m.flash_wait_states} flash wait states; rules in docs/speed.md. A patch schedule's per-patch "
                "layers are summed over their tiles.)")
    else:
        note = (f"({result.target}: exact instruction counts of the first invoke; cycles are modelled for "
                "Cortex-M4 only, see docs/speed.md)")
    return rows, "\n".join(lines + [note])
