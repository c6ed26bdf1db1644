"""Build a generated model for a Cortex-M with arm-none-eabi-gcc and run it
under QEMU (MPS2 machines), the same way hostrun does for the host.

The image is the model's C, the minimal start-up code and linker script of
``mcuforge/targets/`` and a harness that reads N inputs (raw int8, the
model's input layout) from a host file through semihosting, runs init +
invoke on each, and writes every output's bytes to another host file. One
image serves any number of inputs.

QEMU runs with ``-icount shift=0``: every guest instruction advances virtual
time by exactly 1 ns, so the SysTick counter the harness reads around each
``invoke`` (processor clock, 25 MHz on MPS2) gives a deterministic
instruction count, in steps of 40 instructions (1 tick = 40 ns).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import hostrun
from ..codegen.portable import c_sources, include_dirs
from ..ir import McuforgeError
from ..plan import Plan

TARGETS_DIR = Path(__file__).resolve().parents[1] / "targets"
WARNING_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
QEMU = "qemu-system-arm"
ARM_GCC = "arm-none-eabi-gcc"
SYSCLK_HZ = 25_000_000  # MPS2 processor clock that SysTick counts
NS_PER_TICK = 1_000_000_000 // SYSCLK_HZ  # = instructions per tick with -icount shift=0


@dataclass(frozen=True)
class Target:
    name: str
    machine: str  # qemu-system-arm -machine
    cpu: str
    cflags: tuple[str, ...]
    linker_script: str

    @property
    def description(self) -> str:
        return f"{self.cpu} on QEMU {self.machine}"


TARGETS = {
    t.name: t for t in (
        Target("qemu-cortex-m3", "mps2-an385", "Cortex-M3", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
               "mps2.ld"),
        Target("qemu-cortex-m4", "mps2-an386", "Cortex-M4F",
               ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), "mps2.ld"),
        Target("qemu-cortex-m7", "mps2-an500", "Cortex-M7F",
               ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), "mps2.ld"),
    )
}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise McuforgeError(f"--target: '{name}' is not one of host, {', '.join(sorted(TARGETS))}")
    return TARGETS[name]


def tools_missing() -> list[str]:
    return [t for t in (ARM_GCC, QEMU) if shutil.which(t) is None]


def tools_missing_reason() -> str:
    """'' when the Cortex-M tools are installed, else what is missing and the Debian packages."""
    missing = tools_missing()
    if not missing:
        return ""
    return (f"{' and '.join(missing)} not installed (apt-get install gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi qemu-system-arm)")


def _require_tools() -> None:
    reason = tools_missing_reason()
    if reason:
        raise McuforgeError(reason)


def open_files(in_fd: str, out_fd: str) -> str:
    """C statements of a harness's main(): open the input and output files
    named on the semihosting command line ("<image> <input> <output>") as
    in_fd and out_fd (declared by the caller)."""
    return f"""    static char cmdline[512];
    char *in_path, *out_path;
    if (sh_cmdline(cmdline, sizeof cmdline) != 0) return 2;
    in_path = next_word(cmdline);
    out_path = next_word(in_path);
    next_word(out_path);
    {in_fd} = sh_open(in_path, 1);
    {out_fd} = sh_open(out_path, 5);
    if ({in_fd} < 0 || {out_fd} < 0) return 3;
"""


CALL_LINE = re.compile(r"^(\s*)status \|= (mcf_\w+\(.*\)); /\* (\d+) (.*)\*/$")


def profiled_source(text: str) -> str:
    """The model's C with SysTick read around every kernel call: each
    ``status |= mcf_...(...); /* <layer> ... */`` line of the emitter becomes a
    block that adds the call's ticks to its layer (mcuforge_profile_layer, in
    the harness). Only the profiling build uses it; the generated files stay
    as they are."""
    out = ["#include <stdint.h>", "uint64_t mcuforge_ticks(void);",
           "void mcuforge_profile_layer(int32_t layer, uint64_t start);"]
    for line in text.splitlines():
        m = CALL_LINE.match(line)
        if m:
            pad, call, layer, comment = m.groups()
            line = (f"{pad}{{ const uint64_t start_{layer} = mcuforge_ticks(); status |= {call}; "
                    f"mcuforge_profile_layer({layer}, start_{layer}); }} /* {layer} {comment}*/")
        out.append(line)
    return "\n".join(out) + "\n"


PROFILE_SUPPORT = """
#define MCUFORGE_PROFILE_LAYERS {layers}
static uint64_t layer_ticks[MCUFORGE_PROFILE_LAYERS];

void mcuforge_profile_layer(int32_t layer, uint64_t start);
void mcuforge_profile_layer(int32_t layer, uint64_t start)
{{
    layer_ticks[layer] += mcuforge_ticks() - start;
}}
"""


MARK_SUPPORT = """
/* Marks of the cycle model (mcuforge.tools.cycles): its QEMU plugin starts a new
   segment of counts at every read of mcuforge_marks, labelled by the index. */
volatile uint8_t mcuforge_marks[{marks}];
void mcuforge_mark(int32_t id) __attribute__((noinline));
void mcuforge_mark(int32_t id)
{{
    (void)mcuforge_marks[id];
}}
"""


def harness_source(plan: Plan, profile: bool = False, marks: int = 0) -> str:
    """marks > 0: mcuforge_mark(0) and mcuforge_mark(1) around every invoke,
    the mark array sized for `marks` labels (mcuforge.tools.cycles)."""
    p = plan.name
    P = p.upper()
    outs = [f"{p}_output{'' if k == 0 else k}()" for k in range(len(plan.outputs))]
    sizes = [f"{P}_OUTPUT{'' if k == 0 else k}_SIZE" for k in range(len(plan.outputs))]
    writes = "\n".join(f"        if (sh_write(out, {o}, {s} * sizeof(*{o})) != 0) return 5;"
                       for o, s in zip(outs, sizes))
    stream_support, input_buffer, invoke = hostrun.input_source(plan)
    profile_support, profile_report = "", ""
    if marks:
        profile_support += MARK_SUPPORT.format(marks=marks)
        invoke = f"(mcuforge_mark(0), status = {invoke}, mcuforge_mark(1), status)"
    if profile:
        profile_support += PROFILE_SUPPORT.format(layers=len(plan.steps))
        profile_report = """        {
            int32_t layer;
            for (layer = 0; layer < MCUFORGE_PROFILE_LAYERS; ++layer) {
                put_u64("mcuforge: layer ticks ", layer_ticks[layer]);
                layer_ticks[layer] = 0;
            }
        }
"""
    return f"""/* Cortex-M harness generated by mcuforge run --target (semihosting I/O) */
#include <stdint.h>
#include "semihost.h"
#include "{p}.h"

uint64_t mcuforge_ticks(void);
{stream_support}{profile_support}
static void put_u64(const char *label, uint64_t v)
{{
    char buf[80];
    char digits[24];
    int n = 0, k = 0;
    while (label[k] && k < 48) {{
        buf[k] = label[k];
        k++;
    }}
    do {{
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    }} while (v && n < 24);
    while (n > 0) {{
        buf[k++] = digits[--n];
    }}
    buf[k++] = '\\n';
    buf[k] = 0;
    sh_puts(buf);
}}

/* The command line is "<image> <input file> <output file>". */
static char *next_word(char *s)
{{
    while (*s && *s != ' ') s++;
    while (*s == ' ') *s++ = 0;
    return s;
}}

int main(void)
{{
    int in, out{", status" if marks else ""};
    long n = 0;
{open_files("in", "out")}    if ({p}_init() != 0) return 4;
    while ({hostrun.more_inputs(plan, "sh_read(in, {buffer}, {size} * sizeof(*{buffer})) == 0", input_buffer)}) {{
        uint64_t start = mcuforge_ticks(), ticks;
        if ({invoke} != 0) return 6;
        ticks = mcuforge_ticks() - start;
        put_u64("mcuforge: invoke ticks ", ticks);
{profile_report}{writes}
        n++;
    }}
    sh_close(in);
    sh_close(out);
    return n > 0 ? 0 : 7;
}}
"""


def build(plan: Plan, outdir: Path, builddir: Path, target: str | Target = "qemu-cortex-m4",
          opt: str = "-O2", extra_flags: list[str] | None = None, harness: str | None = None,
          profile: bool = False, model_source=None) -> Path:
    """Cross-compile the model + harness + start-up code; return the ELF.
    harness: the harness's C source (default: the inference harness);
    profile: time every kernel call (profiled_source), reported per layer;
    model_source: instead, any rewrite (str -> str) of the model's C."""
    _require_tools()
    t = get_target(target) if isinstance(target, str) else target
    builddir = Path(builddir)
    builddir.mkdir(parents=True, exist_ok=True)
    harness_file = builddir / "harness.c"
    harness_file.write_text(harness or harness_source(plan, profile))
    sources = [str(s) for s in c_sources(outdir, plan.name)]
    if profile and model_source is None:
        model_source = profiled_source
    if model_source is not None:
        model_c = Path(outdir) / f"{plan.name}.c"
        copy = builddir / model_c.name
        copy.write_text(model_source(model_c.read_text()))
        sources = [str(copy) if Path(s) == model_c else s for s in sources]
    elf = builddir / f"{plan.name}_{t.name.replace('-', '_')}{'_profile' if profile else ''}.elf"
    cmd = [ARM_GCC, *t.cflags, opt, *WARNING_FLAGS, "-ffunction-sections", "-fdata-sections",
           *(extra_flags or [])]
    cmd += [f"-I{d}" for d in include_dirs(outdir)] + [f"-I{TARGETS_DIR}"]
    cmd += sources + [str(harness_file), str(TARGETS_DIR / "startup.c")]
    cmd += ["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", f"-L{TARGETS_DIR}",
            f"-T{TARGETS_DIR / t.linker_script}", "-Wl,--gc-sections", f"-Wl,-Map={elf.with_suffix('.map')}",
            "-o", str(elf)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise McuforgeError(f"building the generated C for {t.name} failed ({' '.join(cmd[:4])} ...):\n"
                            f"{res.stderr.strip()}")
    if res.stderr.strip():
        raise McuforgeError(f"the generated C compiled with warnings for {t.name}:\n{res.stderr.strip()}")
    return elf


@dataclass
class RunStats:
    target: str
    ticks: list[int]
    layer_ticks: list[list[int]] | None = None  # profiling build: per input, per layer

    def layer_instructions(self) -> list[int]:
        """Instructions per layer of the first input (+-40 per kernel call)."""
        return [k * NS_PER_TICK for k in (self.layer_ticks or [[]])[0]]

    @property
    def instructions(self) -> list[int]:
        """Instructions per invoke (virtual ns under -icount shift=0), +-40."""
        return [k * NS_PER_TICK for k in self.ticks]


def qemu_command(t: Target, elf: Path, args: list[str], extra: list[str] | None = None) -> list[str]:
    sh = ",".join(["enable=on", "target=native", "chardev=console", "arg=" + elf.name] + [f"arg={a}" for a in args])
    return [QEMU, "-machine", t.machine, "-display", "none", "-monitor", "none", "-serial", "none",
            "-nodefaults", "-net", "none", "-icount", "shift=0,align=off,sleep=off", "-chardev", "stdio,id=console,signal=off",
            "-semihosting-config", sh, *(extra or []),
            "-kernel", str(elf)]


def run_image(t: Target, elf: Path, data: bytes, timeout: float = 600,
              extra: list[str] | None = None) -> tuple[str, bytes]:
    """Run a harness image on `data` (its input file); returns (console, output file).
    extra: more qemu-system-arm options (e.g. a -plugin)."""
    with tempfile.TemporaryDirectory(prefix="mcuforge-qemu-") as tmp:
        tmp = Path(tmp)
        (tmp / "in.bin").write_bytes(data)
        local_elf = tmp / Path(elf).name
        shutil.copyfile(elf, local_elf)
        cmd = qemu_command(t, local_elf, ["in.bin", "out.bin"], extra)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise McuforgeError(f"the model did not finish within {timeout:.0f} s under QEMU {t.machine}") from None
        console = res.stdout + res.stderr
        if res.returncode != 0:
            raise McuforgeError(f"the generated model failed on {t.name} (exit {res.returncode}): "
                                f"{console.strip()[-2000:]}")
        return console, (tmp / "out.bin").read_bytes()


def run(plan: Plan, elf: Path, inputs: np.ndarray, target: str | Target = "qemu-cortex-m4",
        timeout: float = 600) -> tuple[list[np.ndarray], RunStats]:
    """inputs: (N, ...) in the IR layout, of the input's type (int8 or int16). Returns one (N, ...)
    array per output and the tick counts."""
    _require_tools()
    t = get_target(target) if isinstance(target, str) else target
    x = np.ascontiguousarray(inputs, dtype=plan.graph.tensors[plan.input].dtype)
    n = x.shape[0]
    console, out = run_image(t, elf, x.tobytes(), timeout)
    raw = np.frombuffer(out, dtype=np.int8)
    ticks = [int(v) for v in re.findall(r"mcuforge: invoke ticks (\d+)", console)]
    layers = [int(v) for v in re.findall(r"mcuforge: layer ticks (\d+)", console)]
    per_input = None
    if layers:
        k = len(plan.steps)
        per_input = [layers[i * k:(i + 1) * k] for i in range(len(layers) // k)]
    return hostrun.split_outputs(plan, raw, n, f"on {t.name}"), RunStats(t.name, ticks, per_input)


def build_and_run(plan: Plan, outdir: Path, inputs: np.ndarray, target: str = "qemu-cortex-m4",
                  opt: str = "-O2", profile: bool = False) -> tuple[list[np.ndarray], RunStats]:
    with tempfile.TemporaryDirectory(prefix="mcuforge-cm-") as tmp:
        elf = build(plan, outdir, Path(tmp), target, opt=opt, profile=profile)
        return run(plan, elf, inputs, target)


def profile_table(plan: Plan, stats: RunStats) -> tuple[list[dict], str]:
    """Per layer: kernel, MACs, instructions, MACs per instruction (first input)."""
    from ..ops import describe_step
    from ..registry import backend_for

    backend = backend_for(plan.config.kernels)
    instr = stats.layer_instructions()
    total = sum(instr) or 1
    rows = []
    for s, n in zip(plan.steps, instr):
        fn, fallback = backend.kernel_of(plan, s)
        rows.append({"index": s.index, "name": s.name, "description": describe_step(s, plan.graph), "function": fn,
                     "portable": fallback, "macs": s.macs, "instructions": n,
                     "macs_per_instruction": round(s.macs / n, 3) if n else None})
    head = ("#", "layer", "kernel", "MACs", "instructions", "MAC/instr", "share")
    table = [head]
    for r in rows:
        table.append((str(r["index"]), r["name"][:28], r["function"] + (" (portable)" if r["portable"] and
                                                                         plan.config.kernels != "portable" else ""),
                      f"{r['macs']:,}", f"{r['instructions']:,}",
                      f"{r['macs_per_instruction']:.2f}" if r["macs_per_instruction"] is not None else "-",
                      f"{100 * r['instructions'] / total:.1f}%"))
    macs = sum(r["macs"] for r in rows)
    table.append(("", "all layers", "", f"{macs:,}", f"{total:,}", f"{macs / total:.2f}", "100%"))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i in (0, 3, 4, 5, 6) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             .rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = (f"(a patch schedule's per-patch layers summed over its tiles; {stats.target}, instructions = SysTick "
            f"ticks x {NS_PER_TICK} under -icount, +-{NS_PER_TICK} per kernel call)")
    return rows, "\n".join(lines + [note])
