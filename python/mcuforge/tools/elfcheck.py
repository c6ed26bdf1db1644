"""Read an ELF (object or linked image) with pyelftools: RAM and flash by
section, the model's own symbols, and a verdict against the budgets.

What counts where: allocated sections without contents (``.bss``,
``noinit``) are RAM; sections whose load address differs from their run
address (``.data``: initial values in flash, copied to RAM at start-up) are
RAM *and* flash; every other allocated section (code, read-only data, vector
tables, and writable tables that stay in flash such as Zephyr's
``sw_isr_table``) is flash. For images without such copies (host
executables, objects) writable sections count as RAM and flash. This is
``arm-none-eabi-size``'s Berkeley rule (``flash == text + data``,
``ram == data + bss``) except that ``size`` counts writable sections kept in
flash as data.

A model ``<name>`` owns:

* ``arena``: the symbol ``<name>_arena`` (every activation and scratch buffer);
* ``weights``: its constant data (``<name>_*`` objects in flash);
* ``code``: its functions (``<name>_*``) and the runtime kernels it links
  (``mcf_*``, plus local helpers defined in the runtime's ``mcf_*.c`` files);
* any other RAM it defines (``<name>_*`` objects in RAM besides the arena).

With ``--model``, ``--sram-budget`` applies to the model's RAM and
``--flash-budget`` to its flash (weights + code); without ``--model``, to the
whole image.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import parse_size
from ..ir import BudgetError, McuforgeError

# Section name prefixes and what they occupy. .data occupies both (its
# initial values sit in flash and are copied to RAM at start-up).
RAM_ONLY = (".bss", ".noinit", "noinit", ".sbss", "COMMON")
BOTH = (".data", ".sdata")

RUNTIME_PREFIX = "mcf_"
_RUNTIME_FILE = re.compile(r"^mcf_\w+\.c(\.o(bj)?)?$")


@dataclass
class SymbolInfo:
    name: str
    size: int
    section: str
    kind: str  # "ram" | "flash"
    type: str = "object"  # "object" | "func"
    file: str | None = None  # source file of a local symbol, where the symbol table says it

    @property
    def is_runtime(self) -> bool:
        return self.name.startswith(RUNTIME_PREFIX) or bool(self.file and _RUNTIME_FILE.match(self.file))


@dataclass
class ElfMemory:
    path: str
    ram_by_section: dict[str, int] = field(default_factory=dict)
    flash_by_section: dict[str, int] = field(default_factory=dict)
    symbols: list[SymbolInfo] = field(default_factory=list)
    machine: str = ""

    @property
    def ram(self) -> int:
        return sum(self.ram_by_section.values())

    @property
    def flash(self) -> int:
        return sum(self.flash_by_section.values())

    def symbol(self, name: str) -> SymbolInfo | None:
        for s in self.symbols:
            if s.name == name:
                return s
        return None

    def model_symbols(self, prefix: str) -> list[SymbolInfo]:
        return [s for s in self.symbols if s.name.startswith(prefix + "_")]

    def runtime_symbols(self) -> list[SymbolInfo]:
        return [s for s in self.symbols if s.is_runtime]


def _classify(name: str, flags: int, sh_type: str, copied: bool | None = None) -> str | None:
    """"ram", "flash", "both" (initial values in flash, copied to RAM) or None.

    ``copied``: whether the section's load address differs from its run
    address; None when the image has no such copies (host executables,
    relocatable objects), where writable sections count as RAM and flash the
    way ``size`` counts them as data.
    """
    from elftools.elf.constants import SH_FLAGS

    if not flags & SH_FLAGS.SHF_ALLOC:
        return None
    if sh_type == "SHT_NOBITS" or name.startswith(RAM_ONLY):
        return "ram"
    if flags & SH_FLAGS.SHF_EXECINSTR:
        return "flash"
    if copied is not None:
        return "both" if copied else "flash"
    if name.startswith(BOTH) or flags & SH_FLAGS.SHF_WRITE:
        return "both"
    return "flash"


def _load_addresses(elf) -> dict[int, int] | None:
    """Section index -> load address (LMA), or None if nothing is copied at start-up."""
    loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
    if not any(seg["p_vaddr"] != seg["p_paddr"] and seg["p_filesz"] for seg in loads):
        return None
    out = {}
    for idx, sec in enumerate(elf.iter_sections()):
        for seg in loads:
            if seg["p_vaddr"] <= sec["sh_addr"] < seg["p_vaddr"] + max(seg["p_memsz"], 1) and \
                    seg["p_offset"] <= sec["sh_offset"] <= seg["p_offset"] + seg["p_filesz"]:
                out[idx] = seg["p_paddr"] + (sec["sh_addr"] - seg["p_vaddr"])
                break
    return out


def read_elf(path: Path) -> ElfMemory:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    path = Path(path)
    if not path.is_file():
        raise McuforgeError(f"{path}: ELF file not found")
    mem = ElfMemory(str(path))
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            mem.machine = elf["e_machine"]
            kinds: dict[int, tuple[str, str]] = {}
            lma = _load_addresses(elf)
            for idx, sec in enumerate(elf.iter_sections()):
                copied = None if lma is None else lma.get(idx, sec["sh_addr"]) != sec["sh_addr"]
                kind = _classify(sec.name, sec["sh_flags"], sec["sh_type"], copied)
                if kind is None or sec["sh_size"] == 0:
                    continue
                kinds[idx] = (sec.name, kind)
                if kind in ("ram", "both"):
                    mem.ram_by_section[sec.name] = mem.ram_by_section.get(sec.name, 0) + sec["sh_size"]
                if kind in ("flash", "both"):
                    mem.flash_by_section[sec.name] = mem.flash_by_section.get(sec.name, 0) + sec["sh_size"]
            for sec in elf.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                current_file = None
                for sym in sec.iter_symbols():
                    typ = sym["st_info"]["type"]
                    if typ == "STT_FILE":
                        current_file = Path(sym.name).name if sym.name else None
                        continue
                    if typ not in ("STT_OBJECT", "STT_FUNC") or not sym.name:
                        continue
                    local = sym["st_info"]["bind"] == "STB_LOCAL"
                    kindname = "func" if typ == "STT_FUNC" else "object"
                    src = current_file if local else None
                    shndx = sym["st_shndx"]
                    if shndx == "SHN_COMMON":
                        mem.symbols.append(SymbolInfo(sym.name, sym["st_size"], "COMMON", "ram", kindname, src))
                        continue
                    if not isinstance(shndx, int) or shndx not in kinds:
                        continue
                    secname, kind = kinds[shndx]
                    mem.symbols.append(SymbolInfo(sym.name, sym["st_size"], secname,
                                                  "ram" if kind in ("ram", "both") else "flash", kindname, src))
    except (ELFError, OSError, ValueError, KeyError) as err:
        raise McuforgeError(f"{path}: not a readable ELF file ({err})") from None
    return mem


def _symbol_dict(s: SymbolInfo) -> dict:
    d = asdict(s)
    if d["file"] is None:
        del d["file"]
    return d


def model_breakdown(mem: ElfMemory, model: str) -> dict:
    """The model's own memory: arena, other RAM, weights, code (model + runtime)."""
    own = mem.model_symbols(model)
    runtime = [s for s in mem.runtime_symbols() if not s.name.startswith(model + "_")]
    arena = mem.symbol(f"{model}_arena")
    arena_bytes = arena.size if arena else None
    ram_syms = [s for s in own + runtime if s.kind == "ram"]
    other_ram = sum(s.size for s in ram_syms if s is not arena)
    weights = sum(s.size for s in own if s.kind == "flash" and s.type == "object")
    model_code = sum(s.size for s in own if s.kind == "flash" and s.type == "func")
    runtime_code = sum(s.size for s in runtime if s.kind == "flash" and s.type == "func")
    runtime_const = sum(s.size for s in runtime if s.kind == "flash" and s.type == "object")
    # .data objects occupy flash too (their initial values).
    data_init = sum(s.size for s in ram_syms if s.section.startswith(BOTH))
    flash = weights + model_code + runtime_code + runtime_const + data_init
    ram = (arena_bytes or 0) + other_ram
    symbols = sorted(own + runtime, key=lambda s: (-s.size, s.name))
    return {
        "name": model,
        "arena_bytes": arena_bytes,
        "other_ram_bytes": other_ram,
        "ram_bytes": ram,
        "weights_bytes": weights,
        "code_bytes": model_code + runtime_code,
        "model_code_bytes": model_code,
        "runtime_code_bytes": runtime_code,
        "runtime_const_bytes": runtime_const,
        "flash_bytes": flash,
        "symbols": [_symbol_dict(s) for s in symbols],
    }


def summarize(mem: ElfMemory, model: str | None) -> dict:
    out = {
        "elf": mem.path,
        "machine": mem.machine,
        "ram_bytes": mem.ram,
        "flash_bytes": mem.flash,
        "ram_by_section": dict(sorted(mem.ram_by_section.items())),
        "flash_by_section": dict(sorted(mem.flash_by_section.items())),
    }
    if model:
        out["model"] = model_breakdown(mem, model)
    return out


def _fmt(n: int) -> str:
    return f"{n:,} B" if n < 10 * 1024 else f"{n:,} B ({n / 1024:.1f} KiB)"


def format_text(summary: dict, sections: bool = True) -> str:
    """The report; without `sections` (check-elf --model without --verbose) only the model's lines."""
    lines = [f"{summary['elf']}: RAM {_fmt(summary['ram_bytes'])}, flash {_fmt(summary['flash_bytes'])}"]
    if not sections:
        lines = []
    w = max([len(k) for k in list(summary["ram_by_section"]) + list(summary["flash_by_section"])] + [7])
    lines.append(f"  {'section':<{w}} {'RAM':>10} {'flash':>10}")
    names = sorted(set(summary["ram_by_section"]) | set(summary["flash_by_section"]),
                   key=lambda n: -(summary["ram_by_section"].get(n, 0) + summary["flash_by_section"].get(n, 0)))
    for n in names if sections else []:
        r, f = summary["ram_by_section"].get(n, 0), summary["flash_by_section"].get(n, 0)
        lines.append(f"  {n:<{w}} {r or '':>10} {f or '':>10}")
    if not sections:
        lines = [ln for ln in lines if not ln.startswith("  ")]
    m = summary.get("model")
    if m:
        stack = f", stack {m['stack_bytes']}" if m.get("stack_bytes") is not None else ""
        if m.get("thread_stack_bytes") is not None:
            lines.append(f"thread stack {m['thread_stack_bytes']} B, model's worst-case stack {m.get('stack_bytes')} B")
        lines.append(f"model {m['name']}: RAM {_fmt(m['ram_bytes'])} (arena {m['arena_bytes']}, other "
                     f"{m['other_ram_bytes']}{stack}), flash {_fmt(m['flash_bytes'])} (weights {m['weights_bytes']}, "
                     f"code {m['code_bytes']}: model {m['model_code_bytes']} + runtime mcf_* "
                     f"{m['runtime_code_bytes']})")
    for what in ("sram", "flash"):
        b = summary.get(f"{what}_budget")
        if b is not None:
            used = summary[f"{what}_used"]
            lines.append(f"{'SRAM' if what == 'sram' else 'flash'} budget {_fmt(b)}: {used['scope']} uses "
                         f"{_fmt(used['bytes'])} ({100.0 * used['bytes'] / b:.1f}%)" if b else "")
    return "\n".join(l for l in lines if l)


def top_consumers(summary: dict, mem: ElfMemory, kind: str, n: int = 5) -> list[dict]:
    if summary.get("model"):
        syms = [s for s in summary["model"]["symbols"] if s["kind"] == kind or (kind == "flash" and
                                                                             s["section"].startswith(BOTH))]
    else:
        syms = [_symbol_dict(s) for s in mem.symbols if s.kind == kind or (kind == "flash" and
                                                                            s.section.startswith(BOTH))]
    return sorted(syms, key=lambda s: (-s["size"], s["name"]))[:n]


def check(summary: dict, mem: ElfMemory, sram: int | None, flash: int | None) -> list[str]:
    """Fill in the budget verdict; return the over-budget messages."""
    m = summary.get("model")
    scope = f"model {m['name']}" if m else "the image"
    summary["sram_budget"], summary["flash_budget"] = sram, flash
    problems = []
    for what, budget, used, kind, symbol, arg, flag in (
            ("SRAM", sram, m["ram_bytes"] if m else mem.ram, "ram", "CONFIG_MCUFORGE_SRAM_BUDGET_KB",
             "SRAM_BUDGET", "--sram-budget"),
            ("flash", flash, m["flash_bytes"] if m else mem.flash, "flash", "CONFIG_MCUFORGE_FLASH_BUDGET_KB",
             "FLASH_BUDGET", "--flash-budget")):
        key = "sram" if what == "SRAM" else "flash"
        summary[f"{key}_used"] = {"scope": scope, "bytes": used}
        if budget is None or budget == 0 or used <= budget:
            continue
        top = top_consumers(summary, mem, kind)
        tops = ", ".join(f"{s['name']} {s['size']} B" for s in top)
        need_kb = (used + 1023) // 1024
        problems.append(
            f"{scope} needs {used} bytes of {what}, the budget is {budget} ({budget // 1024} KiB), "
            f"{used - budget} over; largest: {tops}; raise {symbol} to at least {need_kb} "
            f"(or {arg} of mcuforge_add_model, {flag} {need_kb}K) or use a smaller model"
            + (" / the patch-based schedule (CONFIG_MCUFORGE_SCHEDULE_AUTO)" if what == "SRAM" else ""))
    summary["fits"] = not problems
    summary["problems"] = problems
    return problems


def main_check(args) -> int:
    import sys

    mem = read_elf(Path(args.elf))
    model = getattr(args, "model", None)
    summary = summarize(mem, model)
    sram = parse_size(args.sram_budget, "--sram-budget") if args.sram_budget else None
    flash = parse_size(args.flash_budget, "--flash-budget") if args.flash_budget else None
    if model and summary["model"]["arena_bytes"] is None:
        raise McuforgeError(f"{args.elf}: no symbol '{model}_arena'; is --model the name given to compile?")
    stack_problems, stack_warnings = [], []
    if model:
        from .elfstack import apply

        stack_problems, stack_warnings = apply(summary, args)
    problems = check(summary, mem, sram, flash) + stack_problems
    summary["fits"] = not problems
    summary["problems"] = problems
    for w in stack_warnings:
        print(f"mcuforge: WARNING: {w}", file=sys.stderr)
    report = getattr(args, "report", None)
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_text(summary, sections=not model or getattr(args, "verbose", False)))
    if problems:
        msg = f"{args.elf}: over budget: " + "; ".join(problems)
        if getattr(args, "warn_only", False):
            print(f"mcuforge: WARNING: {msg}", file=sys.stderr)
            return 0
        raise BudgetError(msg)
    return 0
