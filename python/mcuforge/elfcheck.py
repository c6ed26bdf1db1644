"""Read an ELF (object or linked image) with pyelftools: RAM and flash by
section, the model's own symbols, and a verdict against the budgets."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .config import parse_size
from .ir import BudgetError, McuforgeError

# Section name prefixes and what they occupy. .data occupies both (its
# initial values sit in flash and are copied to RAM at start-up).
RAM_ONLY = (".bss", ".noinit", "noinit", ".sbss", "COMMON")
BOTH = (".data", ".sdata")


@dataclass
class SymbolInfo:
    name: str
    size: int
    section: str
    kind: str  # "ram" | "flash"


@dataclass
class ElfMemory:
    path: str
    ram_by_section: dict[str, int] = field(default_factory=dict)
    flash_by_section: dict[str, int] = field(default_factory=dict)
    symbols: list[SymbolInfo] = field(default_factory=list)

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


def _classify(name: str, flags: int, sh_type: str) -> str | None:
    from elftools.elf.constants import SH_FLAGS

    if not flags & SH_FLAGS.SHF_ALLOC:
        return None
    if sh_type == "SHT_NOBITS" or name.startswith(RAM_ONLY):
        return "ram"
    if name.startswith(BOTH) or flags & SH_FLAGS.SHF_WRITE:
        return "both"
    return "flash"


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
            kinds: dict[int, tuple[str, str]] = {}
            for idx, sec in enumerate(elf.iter_sections()):
                kind = _classify(sec.name, sec["sh_flags"], sec["sh_type"])
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
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] not in ("STT_OBJECT", "STT_FUNC") or not sym.name:
                        continue
                    shndx = sym["st_shndx"]
                    if shndx == "SHN_COMMON":
                        mem.symbols.append(SymbolInfo(sym.name, sym["st_size"], "COMMON", "ram"))
                        continue
                    if not isinstance(shndx, int) or shndx not in kinds:
                        continue
                    secname, kind = kinds[shndx]
                    mem.symbols.append(SymbolInfo(sym.name, sym["st_size"], secname,
                                                  "ram" if kind in ("ram", "both") else "flash"))
    except (ELFError, OSError, ValueError) as err:
        raise McuforgeError(f"{path}: not a readable ELF file ({err})") from None
    return mem


def summarize(mem: ElfMemory, model: str | None) -> dict:
    out = {
        "elf": mem.path,
        "ram_bytes": mem.ram,
        "flash_bytes": mem.flash,
        "ram_by_section": dict(sorted(mem.ram_by_section.items())),
        "flash_by_section": dict(sorted(mem.flash_by_section.items())),
    }
    if model:
        syms = mem.model_symbols(model)
        arena = mem.symbol(f"{model}_arena")
        out["model"] = {
            "name": model,
            "arena_bytes": arena.size if arena else None,
            "ram_bytes": sum(s.size for s in syms if s.kind == "ram"),
            "flash_bytes": sum(s.size for s in syms if s.kind == "flash"),
            "symbols": [{"name": s.name, "size": s.size, "section": s.section, "kind": s.kind}
                        for s in sorted(syms, key=lambda s: (-s.size, s.name))],
        }
    return out


def main_check(args) -> int:
    mem = read_elf(Path(args.elf))
    summary = summarize(mem, args.model)
    sram = parse_size(args.sram_budget, "--sram-budget") if args.sram_budget else None
    flash = parse_size(args.flash_budget, "--flash-budget") if args.flash_budget else None
    if args.model and summary["model"]["arena_bytes"] is None:
        raise McuforgeError(f"{args.elf}: no symbol '{args.model}_arena'; is --model the name given to compile?")
    summary["sram_budget"], summary["flash_budget"] = sram, flash
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.elf}: RAM {mem.ram} bytes, flash {mem.flash} bytes")
        if args.model:
            m = summary["model"]
            print(f"model {args.model}: arena {m['arena_bytes']} bytes, RAM {m['ram_bytes']}, flash {m['flash_bytes']}")
    over = []
    if sram is not None and mem.ram > sram:
        over.append(f"RAM {mem.ram} > budget {sram}")
    if flash is not None and mem.flash > flash:
        over.append(f"flash {mem.flash} > budget {flash}")
    if over:
        top = sorted(mem.symbols, key=lambda s: -s.size)[:5]
        tops = ", ".join(f"{s.name} ({s.size} B {s.kind})" for s in top)
        raise BudgetError(f"{args.elf}: over budget: {'; '.join(over)}; largest symbols: {tops}; "
                          "raise --sram-budget/--flash-budget (CONFIG_MCUFORGE_SRAM_BUDGET_KB / "
                          "CONFIG_MCUFORGE_FLASH_BUDGET_KB) or shrink the model")
    return 0
