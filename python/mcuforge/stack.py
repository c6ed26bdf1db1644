"""Worst-case stack of a generated model's entry points, from the compiled
objects' own data.

Frames come from gcc's ``-fstack-usage`` (one ``.su`` file next to each
object). The call graph comes from the objects: each call or branch
instruction (found by disassembling the code with the toolchain's
``objdump``) is resolved through the object's relocations (read with
pyelftools), or, for a call inside its own section, through the address the
instruction encodes. The bound of a function is its frame plus the largest
bound of anything it calls or branches to (a tail branch is counted as if
the caller's frame were still there: an over-estimate of a few bytes at
most, never an under-estimate).

What has no ``.su`` entry (hand-written assembly kernels, the C library's
``memset``/``memcpy``, libgcc helpers) gets the frame its own code sets up:
the sum of every stack-pointer decrement in its body (push, stmdb, vpush,
``sub sp``), plus the return address on x86-64. Library functions are read
from the archives the toolchain links (``libc.a``, ``libgcc.a``); glibc's
string functions are IFUNCs, so every variant the archive holds
(``__memset_*``) is analysed and the largest is taken.

Indirect calls: inside the runtime, a call through a pointer may reach any
function whose address the objects take (relocations that are not calls),
so those are its callees. A computed jump inside a hand-written kernel
(``bx rN`` in a function that loads a label of its own with ``adr``) stays
in the function. An indirect call in the model's own functions is the
application's callback (``read`` of ``<name>_invoke_stream``): its stack is
the application's, and the result says so.

Refused, with the function named: recursion (a cycle in the graph), a frame
gcc reports as dynamic (VLA, alloca), and a call to code that is not in the
objects nor in the toolchain's libraries.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import McuforgeError

# The cores a generated header's stack can be computed for: compiler, flags.
TARGETS = {
    "cortex-m4": ("arm-none-eabi-gcc", ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")),
    "cortex-m3": ("arm-none-eabi-gcc", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")),
    "cortex-m7": ("arm-none-eabi-gcc", ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")),
    "host": ("cc", ()),
}
DEFAULT_TARGET = "cortex-m4"
DEFAULT_OPT = "-O2"
ANALYSIS_FLAGS = ("-std=c99", "-fstack-usage", "-ffunction-sections")

X86_64_RED_ZONE = 128  # System V x86-64 ABI: below the stack pointer, usable by leaf functions
ENTRY_SUFFIXES = ("init", "invoke", "invoke_stream", "train_step", "train_step_stream")

_FUNC_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")  # pyelftools names STT_GNU_IFUNC (10) STT_LOOS
_ARM_CALL_RELOCS = {"R_ARM_CALL", "R_ARM_THM_CALL", "R_ARM_PC24", "R_ARM_THM_XPC22"}
_ARM_JUMP_RELOCS = {"R_ARM_JUMP24", "R_ARM_THM_JUMP24", "R_ARM_THM_JUMP19", "R_ARM_THM_JUMP11", "R_ARM_THM_JUMP8"}
_X86_BRANCH_RELOCS = {"R_X86_64_PLT32", "R_X86_64_PC32"}


class StackError(McuforgeError):
    """The stack of an entry point is unbounded or cannot be derived."""


@dataclass
class Function:
    name: str
    obj: str  # object (or archive member) that defines it
    section: int
    start: int
    size: int
    local: bool
    frame: int | None = None
    frame_source: str = ""  # ".su" | "code"
    dynamic: bool = False
    calls: set = field(default_factory=set)  # keys of callees (calls and tail branches)
    externals: set = field(default_factory=set)  # names not defined in the objects
    indirect_call: bool = False
    indirect_jump: bool = False
    computed_jump: bool = False  # adr of its own label: bx rN stays inside
    code_frame: int = 0  # sum of the stack-pointer decrements in its code

    @property
    def key(self) -> tuple[str, str]:
        return (self.obj, self.name) if self.local else ("", self.name)


@dataclass
class EntryStack:
    name: str
    bytes: int
    path: list[tuple[str, int]]  # (function, frame) along the deepest path
    callback: str | None = None  # the application's callback this bound leaves out

    def describe(self) -> str:
        chain = " -> ".join(f"{n} {f}" for n, f in self.path)
        note = f" + the stack of the application's {self.callback}()" if self.callback else ""
        return f"{self.name}: {self.bytes} bytes{note} ({chain})"


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise StackError(f"{' '.join(cmd[:4])} ... failed:\n{res.stderr.strip()[:2000]}")
    return res.stdout


def _objdump_for(cc: str) -> str:
    """The objdump of the toolchain whose compiler is `cc`."""
    base = Path(cc).name
    candidates = [base[:-3] + "objdump"] if base.endswith("gcc") else []
    candidates.append("objdump")
    for c in candidates:
        path = shutil.which(str(Path(cc).parent / c)) if "/" in cc else shutil.which(c)
        if path:
            return path
    raise StackError(f"no objdump found next to '{cc}' (install binutils of the toolchain)")


# -- .su files ---------------------------------------------------------------

_SU_LINE = re.compile(r"^(?P<loc>.*):(?P<fn>[^:\t]+)\t(?P<bytes>\d+)\t(?P<kind>[a-z,]+)\s*$")


def read_su(path: Path) -> dict[str, tuple[int, str]]:
    """function name (as gcc prints it) -> (bytes, qualifiers); the largest if a name repeats."""
    out: dict[str, tuple[int, str]] = {}
    for line in Path(path).read_text().splitlines():
        m = _SU_LINE.match(line)
        if not m:
            continue
        fn, size, kind = m.group("fn"), int(m.group("bytes")), m.group("kind")
        if fn in out:  # clones of one function (foo.part.0, foo.part.1): the largest, dynamic if any is
            old_size, old_kind = out[fn]
            size = max(size, old_size)
            kind = old_kind if old_kind == "dynamic" else kind
        out[fn] = (size, kind)
    return out


def su_path(obj: Path) -> Path:
    """gcc writes <output without its last suffix>.su: vww.c.o -> vww.c.su, vww.c.obj -> vww.c.su."""
    return obj.with_suffix(".su")


def _su_name(symbol: str) -> str:
    """matmul_2_any.constprop.0 -> matmul_2_any.constprop (the .su names omit gcc's clone numbers)."""
    return re.sub(r"\.\d+$", "", symbol)


# -- objects -----------------------------------------------------------------

@dataclass
class _Object:
    name: str
    data: bytes
    machine: str = ""
    functions: list[Function] = field(default_factory=list)
    address_taken: set = field(default_factory=set)  # function keys whose address is taken


def _elf(data: bytes):
    from elftools.elf.elffile import ELFFile

    return ELFFile(io.BytesIO(data))


_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2,8}(?: [0-9a-f]{2,8})*\s+)?(.*)$")
_FUNC_HEADER = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_SECTION = re.compile(r"^Disassembly of section (.+):$")
_TARGET = re.compile(r"^(?:0x)?([0-9a-f]+)(?:\s+<.*>)?$")


def _disassemble(path: Path, objdump: str) -> dict[str, list[tuple[int, str, str]]]:
    """section name -> [(offset, mnemonic, operands)]."""
    out: dict[str, list[tuple[int, str, str]]] = {}
    current = None
    for line in _run([objdump, "-d", "-w", "--no-show-raw-insn", str(path)]).splitlines():
        m = _SECTION.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
            continue
        if current is None or _FUNC_HEADER.match(line):
            continue
        m = _INSN.match(line)
        if not m:
            continue
        text = m.group(2).split(";")[0].split("@")[0].strip()
        if not text or text.startswith((".word", ".short", ".byte", "(bad)")):
            continue
        parts = text.split(None, 1)
        mnemonic = parts[0]
        if mnemonic in ("notrack", "bnd", "rep", "repz", "repnz", "lock", "data16", "cs", "ds") and len(parts) > 1:
            parts = parts[1].split(None, 1)
            mnemonic = parts[0]
        current.append((int(m.group(1), 16), mnemonic, parts[1].strip() if len(parts) > 1 else ""))
    return out


_ARM_REGLIST = re.compile(r"\{([^}]*)\}")


def _reg_count(operands: str) -> int:
    m = _ARM_REGLIST.search(operands)
    if not m:
        return 0
    n = 0
    for part in m.group(1).split(","):
        part = part.strip()
        r = re.fullmatch(r"([a-z]+)(\d+)-[a-z]*(\d+)", part)
        n += int(r.group(3)) - int(r.group(2)) + 1 if r else 1
    return n


def _sp_decrement(machine: str, mnemonic: str, operands: str) -> int:
    """Bytes this instruction moves the stack pointer down (0 if it does not)."""
    ops = operands.replace(" ", "")
    if machine == "x64":
        if mnemonic.startswith("push"):
            return 8
        m = re.fullmatch(r"\$(0x[0-9a-f]+|\d+),%rsp", ops)
        if mnemonic.startswith("sub") and m:
            return int(m.group(1), 0)
        return 0
    base = mnemonic.split(".")[0]
    if base == "push" or (base == "stmdb" and ops.startswith("sp!")):
        return 4 * _reg_count(operands)
    if base == "vpush":
        regs = _reg_count(operands)
        return (8 if "d" in operands.split("{")[1][:2] else 4) * regs
    m = re.fullmatch(r"sp,(?:sp,)?#(\d+)", ops)
    if base in ("sub", "subw") and m:
        return int(m.group(1))
    m = re.search(r"\[sp,#-(\d+)\]!", ops)
    if base.startswith("str") and m:
        return int(m.group(1))
    return 0


def _read_object(name: str, data: bytes, objdump: str, su: dict[str, tuple[int, str]] | None) -> _Object:
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection

    elf = _elf(data)
    machine = {"EM_ARM": "arm", "EM_X86_64": "x64"}.get(elf["e_machine"])
    if machine is None:
        raise StackError(f"{name}: stack analysis supports ARM and x86-64 objects, not {elf['e_machine']}")
    if elf["e_type"] != "ET_REL":
        raise StackError(f"{name}: not a relocatable object (compile with -c)")
    obj = _Object(name, data, machine)
    symtab = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)), None)
    if symtab is None:
        return obj
    symbols = list(symtab.iter_symbols())
    by_section: dict[int, list[Function]] = {}
    for sym in symbols:
        if sym["st_info"]["type"] not in _FUNC_TYPES or not isinstance(sym["st_shndx"], int):
            continue
        start = sym["st_value"] & ~1 if machine == "arm" else sym["st_value"]
        fn = Function(sym.name, name, sym["st_shndx"], start, sym["st_size"], sym["st_info"]["bind"] == "STB_LOCAL")
        obj.functions.append(fn)
        by_section.setdefault(fn.section, []).append(fn)

    def at(section: int, offset: int) -> Function | None:
        for f in by_section.get(section, []):
            if f.start <= offset < f.start + max(f.size, 1):
                return f
        return None

    def target_key(sym, addend: int) -> tuple[tuple[str, str] | None, str | None]:
        """A relocation's target: (function key, None) or (None, external name)."""
        typ, shndx = sym["st_info"]["type"], sym["st_shndx"]
        if shndx == "SHN_UNDEF":
            return None, sym.name
        if not isinstance(shndx, int):
            return None, None
        if typ == "STT_SECTION":
            f = at(shndx, addend)
            return (f.key if f else None), None
        if typ in _FUNC_TYPES:
            start = sym["st_value"] & ~1 if machine == "arm" else sym["st_value"]
            f = at(shndx, start)
            return (f.key if f else None), None
        return None, None

    # relocations: section index they apply to -> offset -> (type, symbol, addend)
    relocs: dict[int, dict[int, tuple[str, object, int]]] = {}
    from elftools.elf.descriptions import describe_reloc_type

    for sec in elf.iter_sections():
        if not isinstance(sec, RelocationSection):
            continue
        applies = sec["sh_info"]
        table = relocs.setdefault(applies, {})
        target_sec = elf.get_section(applies)
        executable = bool(target_sec["sh_flags"] & 0x4)
        # unwind tables and debug data refer to every function; only code and data take addresses
        unwind = not target_sec["sh_flags"] & 0x2 or target_sec.name.startswith((".eh_frame", ".ARM.ex"))
        for r in sec.iter_relocations():
            rtype = describe_reloc_type(r["r_info_type"], elf)
            sym = symbols[r["r_info_sym"]]
            addend = r["r_addend"] if r.is_RELA() else 0
            table[r["r_offset"]] = (rtype, sym, addend)
            branch = rtype in _ARM_CALL_RELOCS | _ARM_JUMP_RELOCS or (
                machine == "x64" and executable and rtype in _X86_BRANCH_RELOCS and _is_branch_at(elf, applies, r))
            if not branch and not unwind:
                # the address of a function is taken: an indirect call may reach it
                key, _ = target_key(sym, addend + (4 if machine == "x64" and rtype.endswith("PC32") else 0))
                if key is not None:
                    obj.address_taken.add(key)

    with tempfile.TemporaryDirectory(prefix="mcuforge-stack-") as tmp:
        path = Path(tmp) / "o.o"
        path.write_bytes(data)
        code = _disassemble(path, objdump)
    def containing(section: int, offset: int) -> list[Function]:
        return [f for f in by_section.get(section, []) if f.start <= offset < f.start + max(f.size, 1)]

    def inside(fn: Function, key) -> bool:
        """Whether the function `key` starts inside fn's own code (an alias or a label of it)."""
        other = next((f for f in by_section.get(fn.section, []) if f.key == key), None)
        return key == fn.key or (other is not None and fn.start <= other.start < fn.start + max(fn.size, 1))

    def _instruction(fn: Function, idx: int, off: int, end: int, mnemonic: str, operands: str) -> None:
        fn.code_frame += _sp_decrement(machine, mnemonic, operands)
        kind = _branch_kind(machine, mnemonic, operands)
        if kind is None:
            return
        if kind == "adr":
            fn.computed_jump = True
            return
        if kind in ("indirect_call", "indirect_jump"):
            setattr(fn, kind, True)
            return
        # direct call or branch: a relocation inside the instruction, or the encoded address
        table = relocs.get(idx, {})
        branch_types = _X86_BRANCH_RELOCS if machine == "x64" else _ARM_CALL_RELOCS | _ARM_JUMP_RELOCS
        rel = next((table[o] for o in range(off, min(end, off + (16 if machine == "x64" else 4)))
                    if o in table and table[o][0] in branch_types), None)
        if rel is not None:
            rtype, sym, addend = rel
            if machine == "x64":
                addend += 4
            key, external = target_key(sym, addend)
            if external:
                fn.externals.add(external)
            elif key is not None and (kind == "call" or not inside(fn, key)):
                fn.calls.add(key)  # a call to itself stays: recursion
            return
        m = _TARGET.match(operands.strip())
        if not m:
            return
        target = int(m.group(1), 16)
        if kind == "call" and target == fn.start:
            fn.calls.add(fn.key)  # recursion
            return
        if fn.start <= target < fn.start + max(fn.size, 1):
            return
        dests = sorted(containing(idx, target), key=lambda f: (f.start != target, f.name))
        if dests:
            fn.calls.add(dests[0].key)
        elif kind == "call":
            raise StackError(f"{name}: {fn.name} calls address {m.group(1)} which is in no function")

    sec_index = {s.name: i for i, s in enumerate(elf.iter_sections())}
    for sec_name, insns in code.items():
        idx = sec_index.get(sec_name)
        if idx is None:
            continue
        ends = [o for o, _, _ in insns[1:]] + [1 << 62]
        for (off, mnemonic, operands), end in zip(insns, ends):
            for fn in containing(idx, off):  # aliases share their code
                _instruction(fn, idx, off, end, mnemonic, operands)
    for fn in obj.functions:
        code_frame = fn.code_frame + (8 if machine == "x64" else 0)  # x86-64: the return address
        entry = su.get(_su_name(fn.name)) if su is not None else None
        if entry is not None:
            fn.frame, fn.frame_source = entry[0], ".su"
            fn.dynamic = entry[1] == "dynamic"  # "dynamic,bounded": the number is the bound
        else:
            fn.frame, fn.frame_source = code_frame, "code"
    return obj


def _is_branch_at(elf, section: int, r) -> bool:
    """x86-64: whether the relocated field is the operand of a call or jmp (opcode e8/e9, or 0f 8x)."""
    data = elf.get_section(section).data()
    off = r["r_offset"]
    if off >= 1 and data[off - 1] in (0xE8, 0xE9):
        return True
    return off >= 2 and data[off - 2] == 0x0F and 0x80 <= data[off - 1] <= 0x8F


def _branch_kind(machine: str, mnemonic: str, operands: str) -> str | None:
    ops = operands.strip()
    if machine == "x64":
        if mnemonic.startswith("call"):
            return "indirect_call" if ops.startswith("*") else "call"
        if mnemonic.startswith("j"):
            if ops.startswith("*"):
                return "indirect_jump"
            return "branch"
        return None
    base = mnemonic.split(".")[0]
    if base.startswith("adr") or (base in ("add", "addw", "sub", "subw")
                                  and re.match(r"(r\d+|sb|sl|fp|ip),\s*pc,", ops)):
        return "adr"
    if base in ("bl", "blx"):
        return "indirect_call" if re.fullmatch(r"(r\d+|ip|lr|sb|sl|fp)", ops) else "call"
    if base == "bx":
        return None if ops == "lr" else "indirect_jump"
    if base == "mov" and ops.startswith("pc,"):
        return "indirect_jump"
    if base.startswith("ldr") and ops.startswith("pc,") and "[sp]" not in ops.replace(" ", "") \
            and "[sp" not in ops:
        return "indirect_jump"
    if re.fullmatch(r"b(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?", base) or base in ("cbz", "cbnz"):
        return "branch"
    return None


# -- archives ----------------------------------------------------------------

class _Archive:
    """A Unix ar archive read through its symbol index."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        if not self.data.startswith(b"!<arch>\n"):
            raise StackError(f"{path}: not an ar archive")
        self.index: dict[str, int] = {}
        self.longnames = b""
        pos = 8
        while pos + 60 <= len(self.data):
            name = self.data[pos:pos + 16].decode().strip()
            size = int(self.data[pos + 48:pos + 58].decode().strip())
            body = self.data[pos + 60:pos + 60 + size]
            if name in ("/", "/SYM64/"):
                width = 8 if name == "/SYM64/" else 4
                n = int.from_bytes(body[:width], "big")
                offsets = [int.from_bytes(body[width + i * width:width + (i + 1) * width], "big") for i in range(n)]
                names = body[width + n * width:].split(b"\0")
                for off, nm in zip(offsets, names):
                    self.index.setdefault(nm.decode(), off)
            elif name == "//":
                self.longnames = body
            else:
                break
            pos += 60 + size + (size & 1)

    def member(self, offset: int) -> tuple[str, bytes]:
        name = self.data[offset:offset + 16].decode().strip()
        size = int(self.data[offset + 48:offset + 58].decode().strip())
        if name.startswith("/") and name[1:].isdigit():
            start = int(name[1:])
            name = self.longnames[start:self.longnames.index(b"/\n", start)].decode()
        return f"{self.path.name}({name.rstrip('/')})", self.data[offset + 60:offset + 60 + size]


# -- the program ---------------------------------------------------------------

class Program:
    """Functions of a set of objects, plus the library code they reach."""

    def __init__(self, objects: list[Path], cc: str, flags: tuple[str, ...] = ()):
        self.cc = cc
        self.flags = tuple(flags)
        self.objdump = _objdump_for(cc)
        self.functions: dict[tuple[str, str], Function] = {}
        self.address_taken: set = set()
        self.machine = ""
        self.address_taken_by: dict[str, set] = {}  # object -> function keys whose address it takes
        self.library_of: dict[str, list[tuple[str, str]]] = {}  # external name -> keys
        self._archives: list[_Archive] | None = None
        self._loaded_members: set[str] = set()
        for path in objects:
            path = Path(path)
            su = su_path(path)
            if not su.is_file():
                raise StackError(f"{path}: no {su.name} beside it; compile with -fstack-usage")
            self._add(_read_object(path.name, path.read_bytes(), self.objdump, read_su(su)))

    def _add(self, obj: _Object) -> None:
        self.machine = obj.machine
        for fn in obj.functions:
            if fn.key in self.functions and not fn.local:
                raise StackError(f"{fn.name} is defined twice ({self.functions[fn.key].obj} and {fn.obj})")
            self.functions[fn.key] = fn
        self.address_taken |= obj.address_taken
        self.address_taken_by[obj.name] = set(obj.address_taken)

    def _libraries(self) -> list[_Archive]:
        if self._archives is None:
            self._archives = []
            for query in (["-print-file-name=libc.a"], ["-print-libgcc-file-name"]):
                out = _run([self.cc, *self.flags, *query]).strip()
                if out and Path(out).is_file():
                    self._archives.append(_Archive(Path(out)))
        return self._archives

    def resolve_external(self, name: str) -> list[tuple[str, str]]:
        """Keys of the library functions a call to `name` may run (an IFUNC: all its variants)."""
        if name in self.library_of:
            return self.library_of[name]
        if ("", name) in self.functions:
            self.library_of[name] = [("", name)]
            return self.library_of[name]
        keys: list[tuple[str, str]] = []
        for archive in self._libraries():
            off = archive.index.get(name)
            if off is None:
                continue
            self._load_member(archive, off)
            fn = self.functions.get(("", name))
            if fn is None:
                continue
            variants = _ifunc_variants(archive, off, name)
            if variants is not None:
                # an IFUNC: the resolver's member references every variant it may select
                for sym in variants:
                    voff = archive.index.get(sym)
                    if voff is not None:
                        self._load_member(archive, voff)
                        if ("", sym) in self.functions:
                            keys.append(("", sym))
                if not keys:
                    raise StackError(f"{name} is an IFUNC in {archive.path} and none of its variants was found there")
            else:
                keys.append(("", name))
            break
        if not keys:
            raise StackError(f"calls {name}, whose code is neither in the model's objects nor in the "
                             f"toolchain's libraries ({', '.join(str(a.path) for a in self._libraries()) or 'none'})")
        self.library_of[name] = keys
        return keys

    def _load_member(self, archive: _Archive, offset: int) -> None:
        member, data = archive.member(offset)
        if member in self._loaded_members:
            return
        self._loaded_members.add(member)
        obj = _read_object(member, data, self.objdump, None)
        for fn in obj.functions:
            if not fn.local and ("", fn.name) in self.functions:
                continue  # the first definition wins, as the linker's does
            self.functions[fn.key] = fn
        # the addresses a library takes (an IFUNC resolver's variants) are no targets of the model's pointers

    def callees(self, fn: Function, prefix: str) -> tuple[list[tuple[str, str]], str | None]:
        """Keys fn may call or branch to; the callback note for the model's own indirect calls."""
        out = sorted(fn.calls)
        for ext in sorted(fn.externals):
            out += self.resolve_external(ext)
        callback = None
        library = fn.obj.startswith("lib") and "(" in fn.obj
        # a library's hand-written indirect jumps are its own jump tables
        jumps_out = fn.indirect_jump and not fn.computed_jump and not library
        if fn.indirect_call or jumps_out:
            if library:
                raise StackError(f"{fn.name} ({fn.obj}) calls through a pointer; its callee is unknown")
            # the runtime's pointers are to functions of its own file (tables, a selected row kernel);
            # the model's own functions also hoist a kernel's address into a register
            out += sorted(k for k in self.address_taken_by.get(fn.obj, ()) if k != fn.key)
            if fn.name.endswith("_stream") and fn.name.startswith(prefix + "_"):
                callback = "read"
        return out, callback

    def bound(self, key: tuple[str, str], prefix: str) -> EntryStack:
        memo: dict[tuple[str, str], tuple[int, list, str | None]] = {}
        active: list[tuple[str, str]] = []

        def visit(k):
            if k in memo:
                return memo[k]
            if k in active:
                cycle = active[active.index(k):] + [k]
                raise StackError("recursion: " + " -> ".join(c[1] for c in cycle) + "; its stack has no bound")
            fn = self.functions[k]
            if fn.dynamic:
                raise StackError(f"{fn.name} ({fn.obj}) has a dynamic stack frame (a variable-length array or "
                                 "alloca); its stack has no bound")
            active.append(k)
            best, best_path, cb = 0, [], None
            callees, callback = self.callees(fn, prefix)
            for c in callees:
                b, p, ccb = visit(c)
                cb = cb or ccb
                if b > best:
                    best, best_path = b, p
            active.pop()
            frame = fn.frame
            if self.machine == "x64" and not callees and not (fn.indirect_call or fn.indirect_jump):
                frame += X86_64_RED_ZONE  # a leaf may use the 128 bytes below rsp; -fstack-usage leaves them out
            res = (frame + best, [(fn.name, frame)] + best_path, callback or cb)
            memo[k] = res
            return res

        if key not in self.functions:
            raise StackError(f"no function {key[1]} in the objects")
        total, path, callback = visit(key)
        return EntryStack(key[1], total, path, callback)


def _ifunc_variants(archive: _Archive, offset: int, name: str) -> list[str] | None:
    """None if `name` is an ordinary function; for an IFUNC, the functions its member refers to."""
    from elftools.elf.sections import SymbolTableSection

    _, data = archive.member(offset)
    elf = _elf(data)
    for sec in elf.iter_sections():
        if isinstance(sec, SymbolTableSection):
            syms = list(sec.iter_symbols())
            if not any(s.name == name and s["st_info"]["type"] in ("STT_GNU_IFUNC", "STT_LOOS") for s in syms):
                return None
            # glibc names them __<name>_<isa>; the member's __<name>_chk_* belong to __<name>_chk
            base = name.lstrip("_")
            return sorted(s.name for s in syms if s["st_shndx"] == "SHN_UNDEF" and s.name.startswith(f"__{base}_")
                          and not s.name.startswith(f"__{base}_chk"))
    return None


def entry_points(program: Program, prefix: str) -> list[str]:
    return [f"{prefix}_{s}" for s in ENTRY_SUFFIXES if ("", f"{prefix}_{s}") in program.functions]


def analyze(objects: list[Path], prefix: str, cc: str, flags: tuple[str, ...] = ()) -> dict[str, EntryStack]:
    """Entry point name -> its worst-case stack, for the model `prefix` in these objects."""
    program = Program(objects, cc, flags)
    entries = entry_points(program, prefix)
    if not entries:
        raise StackError(f"no entry point {prefix}_init/_invoke/... in the objects; is '{prefix}' the model's name?")
    return {e: program.bound(("", e), prefix) for e in entries}


# -- the generator's own build --------------------------------------------------

def compiler_for(target: str) -> str | None:
    cc = TARGETS[target][0]
    if target == "host":
        import os

        cc = os.environ.get("CC", "cc")
    return shutil.which(cc)


def compile_for_stack(sources: list[Path], include_dirs: list[Path], target: str = DEFAULT_TARGET,
                      opt: str = DEFAULT_OPT, builddir: Path | None = None,
                      extra_flags: tuple[str, ...] = ()) -> tuple[list[Path], str, tuple[str, ...]]:
    """Compile `sources` into objects with .su files; returns (objects, compiler, target flags)."""
    if target not in TARGETS:
        raise McuforgeError(f"stack target '{target}' is not one of {', '.join(TARGETS)}")
    cc = compiler_for(target)
    if cc is None:
        raise StackError(f"{TARGETS[target][0]} not found")
    flags = TARGETS[target][1] + tuple(extra_flags)
    builddir = Path(builddir)
    builddir.mkdir(parents=True, exist_ok=True)
    objects = []
    for i, src in enumerate(sources):
        obj = builddir / f"{i:03d}_{Path(src).name}.o"
        _compile_cached([cc, opt, *flags, *ANALYSIS_FLAGS, *[f"-I{d}" for d in include_dirs]], Path(src), obj)
        objects.append(obj)
    return objects, cc, flags


def cache_dir() -> Path | None:
    """Where compiled objects and their .su files are kept between compiles ($MCUFORGE_CACHE_DIR, else
    $XDG_CACHE_HOME/mcuforge or ~/.cache/mcuforge; MCUFORGE_CACHE_DIR=off disables it)."""
    env = os.environ.get("MCUFORGE_CACHE_DIR")
    if env == "off":
        return None
    if env:
        return Path(env) / "stack-objects"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcuforge" / "stack-objects"


@functools.lru_cache(maxsize=None)
def _compiler_identity(cc: str) -> str:
    return f"{os.path.realpath(cc)}\n{_run([cc, '--version'])}"


def _compile_cached(cmd: list[str], src: Path, obj: Path) -> None:
    """`cmd -c src -o obj` (with its .su), or the same object from the cache: the key is the compiler's
    identity, the command's flags and the bytes of the source and of every header it includes (the
    compiler's own -MM list), so a hit is the object the compiler would write."""
    cache = cache_dir()
    if cache is None:
        _run([*cmd, "-c", str(src), "-o", str(obj)])
        return
    deps = _run([*cmd, "-MM", "-MT", "o", str(src)]).replace("\\\n", " ").split(":", 1)[1].split()
    h = hashlib.sha256(_compiler_identity(cmd[0]).encode())
    h.update("\0".join(cmd[1:]).encode())
    for d in deps:
        h.update(b"\0" + Path(d).read_bytes())
    key = h.hexdigest()
    hit_o, hit_su = cache / key[:2] / f"{key}.o", cache / key[:2] / f"{key}.su"
    if hit_o.is_file() and hit_su.is_file():
        shutil.copyfile(hit_o, obj)
        shutil.copyfile(hit_su, su_path(obj))
        return
    _run([*cmd, "-c", str(src), "-o", str(obj)])
    try:
        hit_o.parent.mkdir(parents=True, exist_ok=True)
        for src_file, dst in ((obj, hit_o), (su_path(obj), hit_su)):
            tmp = dst.with_name(f".{dst.name}.{os.getpid()}")
            shutil.copyfile(src_file, tmp)
            os.replace(tmp, dst)
    except OSError:  # a read-only or full cache only costs time
        pass


def model_stack(outdir: Path, name: str, target: str = DEFAULT_TARGET, opt: str = DEFAULT_OPT,
                extra_flags: tuple[str, ...] = ()) -> dict[str, EntryStack]:
    """Compile a generated output directory's C (not its weights: data only) and bound every entry point."""
    from .codegen.portable import c_sources, include_dirs

    sources = [s for s in c_sources(outdir, name) if s.name != f"{name}_weights.c"]
    with tempfile.TemporaryDirectory(prefix="mcuforge-stack-") as tmp:
        objects, cc, flags = compile_for_stack(sources, include_dirs(outdir), target, opt, Path(tmp), extra_flags)
        return analyze(objects, name, cc, flags)


def summary(stacks: dict[str, EntryStack], name: str) -> dict[str, int]:
    """The header's numbers: <NAME>_STACK_SIZE (init and inference) and <NAME>_TRAIN_STEP_STACK_SIZE."""
    p = name
    out = {}
    inference = [stacks[e].bytes for e in (f"{p}_init", f"{p}_invoke", f"{p}_invoke_stream") if e in stacks]
    if inference:
        out["STACK_SIZE"] = max(inference)
    train = [stacks[e].bytes for e in (f"{p}_train_step", f"{p}_train_step_stream") if e in stacks]
    if train:
        out["TRAIN_STEP_STACK_SIZE"] = max(train + inference)
    return out


def header_block(name: str, stacks: dict[str, EntryStack] | None, target: str, opt: str,
                 reason: str | None = None) -> list[str]:
    """Lines for the generated header."""
    P = name.upper()
    if stacks is None:
        return ["", f"/* Worst-case stack: not computed ({reason}); {P}_STACK_SIZE is not defined. */"]
    out = ["", f"/* Worst-case stack of each entry point, {target} {opt} (gcc -fstack-usage + the objects'",
           " * call graph; the deepest path in parentheses). Give the thread that runs the model at least this",
           " * much plus the application's own frames."]
    out += [" *   " + e.describe().replace("*/", "* /") for e in stacks.values()]
    out.append(" */")
    for key, value in summary(stacks, name).items():
        out.append(f"#define {P}_{key} {value}")
    if any(e.callback for e in stacks.values()):
        out.append(f"/* {P}_STACK_SIZE leaves out the stack of the application's read() callback. */")
    return out


def annotate(outdir: Path, name: str, target: str = DEFAULT_TARGET, opt: str = DEFAULT_OPT,
             progress=None) -> dict:
    """Bound the entry points of a generated output directory and write the numbers into its header
    (before the C++ guard). Without the target's compiler the header says so and defines no
    <NAME>_STACK_SIZE. Returns the report's "stack" entry."""
    outdir = Path(outdir)
    header = outdir / f"{name}.h"
    if target == "none":
        stacks, reason = None, "--stack-target none"
    elif compiler_for(target) is None:
        stacks, reason = None, f"{TARGETS[target][0]} not found; install it (apt-get install gcc-arm-none-eabi " \
                               "libnewlib-arm-none-eabi) or pass --stack-target host|none"
    else:
        stacks, reason = model_stack(outdir, name, target, opt), None
    if stacks is None and target != "none":  # shown under -q too (the build runs the generator quietly)
        import sys

        print(f"mcuforge: WARNING: worst-case stack not computed ({reason}); {name.upper()}_STACK_SIZE is not "
              "defined", file=sys.stderr, flush=True)
    if progress is not None and stacks is not None:
        for e in stacks.values():
            progress(f"stack ({target} {opt}) {e.describe()}")
    block = "\n".join(header_block(name, stacks, target, opt, reason))
    text = header.read_text()
    guard = "\n#ifdef __cplusplus"
    at = text.index(guard)
    header.write_text(text[:at] + block + "\n" + text[at:])
    if stacks is None:
        return {"target": target, "computed": False, "reason": reason}
    return {"target": target, "opt": opt, "computed": True,
            "entry_points": {k: {"bytes": v.bytes, "path": [list(p) for p in v.path],
                                 **({"callback": v.callback} if v.callback else {})} for k, v in stacks.items()},
            **{k.lower(): v for k, v in summary(stacks, name).items()}}
