"""The worst-case stack the generator computes (<NAME>_STACK_SIZE, from gcc -fstack-usage and the
objects' call graph) is never below the stack the model really uses: every zoo model and the
MLPerf Tiny models (../shared/models, skipped when absent), on the host (x86-64 gcc) and on
Cortex-M4 under QEMU. The measured peak comes from painting the stack below the caller with a
pattern, calling the entry point, and finding the lowest byte it changed. The margin
(bound - measured) is printed (pytest -s) and bounded: the analysis follows real calls, so it
must not be loose by more than a few hundred bytes either.

Also: the analysis refuses recursion, a variable-length array and an unknown callee, naming the
function."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcuforge import stack
from mcuforge.tools import hostrun, qemu
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model

from marks import needs_qemu

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"
MLPERF = ["vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "kws_ref_model.tflite", "ad01_int8.tflite"]
PAINT = 24 * 1024  # bytes painted below the caller: more than any bound here
# The bound may exceed the measured use by at most this (tail calls, pointer targets, a kernel's branch this
# model's shapes never take; on x86-64 also the 128-byte red zone of a leaf and wider frames).
SLACK = {"cortex-m4": 512, "host": 768}

needs_gcc = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")

# A harness that paints PAINT bytes below its own stack pointer, calls one entry point, and
# reports the depth of the lowest byte that changed, measured from the stack pointer at the call.
HARNESS = r"""
#include <stdint.h>
#include "{p}.h"
#ifdef __arm__
#include "semihost.h"
#define READ_SP(v) __asm__ volatile("mov %0, sp" : "=r"(v))
#else
#include <stdio.h>
#define READ_SP(v) __asm__ volatile("mov %%rsp, %0" : "=r"(v))
#endif
#define PAINT {paint}u
{defs}

static void report(const char *label, uint32_t v)
{{
#ifdef __arm__
    char buf[64];
    char digits[12];
    int n = 0, k = 0;
    while (label[k]) {{
        buf[k] = label[k];
        k++;
    }}
    do {{
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    }} while (v);
    while (n > 0) {{
        buf[k++] = digits[--n];
    }}
    buf[k++] = '\n';
    buf[k] = 0;
    sh_puts(buf);
#else
    printf("%s%lu\n", label, (unsigned long)v);
#endif
}}

/* Paint below this function's stack pointer, run `which`, return the bytes it used below it. */
static __attribute__((noinline)) uint32_t painted(int which)
{{
    uintptr_t sp;
    volatile uint8_t *low, *p;
    int status = 0;
    READ_SP(sp);
    low = (volatile uint8_t *)(sp - PAINT);
    for (p = low; p < (volatile uint8_t *)sp; ++p) {{
        *p = 0xA5;
    }}
    {calls}
    if (status != 0) {{
        return 0xFFFFFFFFu;
    }}
    for (p = low; p < (volatile uint8_t *)sp && *p == 0xA5; ++p) {{
    }}
    return (uint32_t)(sp - (uintptr_t)p);
}}

int main(void)
{{
    {measures}
    return 0;
}}
"""


def harness(plan) -> tuple[str, list[str]]:
    p = plan.name
    entries = [f"{p}_init"]
    defs, input_buffer, invoke = hostrun.input_source(plan)
    entries.append(f"{p}_invoke_stream" if plan.input_stream else f"{p}_invoke")
    calls = [f"status = {p}_init();", f"status = {invoke};"]
    if plan.training is not None:
        train = f"{p}_train_step_stream(read_region, 0, 0, 0)" if plan.input_stream else f"{p}_train_step(0, 0)"
        entries.append(f"{p}_train_step_stream" if plan.input_stream else f"{p}_train_step")
        calls.append(f"status = {train};")
    switch = " ".join(f"if (which == {k}) {{ {c} }}" for k, c in enumerate(calls))
    measures = "\n    ".join(f'report("stack {e} ", painted({k}));' for k, e in enumerate(entries))
    src = HARNESS.format(p=p, paint=PAINT, calls=switch, measures=measures, defs=defs)
    return src, entries


def measure(plan, out: Path, build: Path, target: str) -> tuple[dict, dict[str, int]]:
    """Compile the model's C for `target` once with -fstack-usage, bound its entry points from those
    objects, link the same objects with the weights and the painting harness, run it; returns
    (bounds, measured bytes per entry point)."""
    from mcuforge.codegen.portable import c_sources, include_dirs

    src, _ = harness(plan)
    build.mkdir(parents=True, exist_ok=True)
    (build / "harness.c").write_text(src)
    weights = out / f"{plan.name}_weights.c"
    sources = [s for s in c_sources(out, plan.name) if s != weights]
    objects, cc, flags = stack.compile_for_stack(sources, include_dirs(out), target, builddir=build / "obj")
    bounds = stack.analyze(objects, plan.name, cc, flags)
    incs = [f"-I{d}" for d in include_dirs(out)]
    cmd = [cc, "-O2", *flags, "-std=c99", *incs, *map(str, objects), str(weights), str(build / "harness.c")]
    if target == "host":
        # -z now: the dynamic loader binds memset & co. at start-up, not (in its own deep frames) at the first call
        cmd += ["-Wl,-z,now", "-o", str(build / "measure")]
        run = [str(build / "measure")]
    else:
        t = qemu.get_target("qemu-" + target)
        elf = build / "measure.elf"
        cmd += [f"-I{qemu.TARGETS_DIR}", str(qemu.TARGETS_DIR / "startup.c"), "-nostartfiles", "--specs=nano.specs",
                "--specs=nosys.specs", f"-L{qemu.TARGETS_DIR}", f"-T{qemu.TARGETS_DIR / t.linker_script}",
                "-Wl,--gc-sections", "-o", str(elf)]
        run = qemu.qemu_command(t, elf, [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(run, capture_output=True, text=True, timeout=300, cwd=build)
    console = res.stdout + res.stderr
    assert res.returncode == 0, console
    return bounds, {m.group(1): int(m.group(2)) for m in re.finditer(r"stack (\w+) (\d+)", console)}


def check(plan, out: Path, tmp: Path, where: str) -> list[str]:
    """Bound >= measured for every entry point, on the host and Cortex-M4; returns the margin lines."""
    lines = []
    header = (out / f"{plan.name}.h").read_text()
    targets = ["host"] + ([] if qemu.tools_missing_reason() else ["cortex-m4"])
    for target in targets:
        bounds, measured = measure(plan, out, tmp / target, target)
        if target == "cortex-m4":  # the header carries the generator's Cortex-M4 -O2 numbers: the same
            for key, value in stack.summary(bounds, plan.name).items():
                assert f"#define {plan.name.upper()}_{key} {value}\n" in header, (key, value)
        assert set(measured) <= set(bounds) and len(measured) >= 2, (measured, bounds)
        for entry, used in measured.items():
            bound = bounds[entry].bytes
            assert used != 0xFFFFFFFF, f"{entry} failed"
            assert used <= bound, f"{where} {target} {entry}: measured {used} B > bound {bound} B"
            assert bound - used <= SLACK[target], f"{where} {target} {entry}: bound {bound} B, measured {used} B: too loose"
            lines.append(f"{where:34s} {target:9s} {entry:28s} bound {bound:5d} B measured {used:5d} B "
                         f"margin {bound - used:4d} B")
    print("\n" + "\n".join(lines))
    return lines


def _zoo_plan(name: str, tmp: Path, **options):
    torch = pytest.importorskip("torch")  # noqa: F841
    from mcuforge.frontends.torch import from_torch
    from mcuforge.zoo import ZOO

    module, example = ZOO[name]()
    rng = np.random.default_rng(sum(map(ord, name)))
    calib = tmp / f"{name}_calib.npy"
    np.save(calib, rng.standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    out = tmp / "gen"
    plan = compile_model(from_torch(module, example, name=name), BuildConfig(name=name, calibration=str(calib),
                                                                            **options), out)
    return plan, out


def _zoo_names():
    try:
        from mcuforge.zoo import ZOO
    except Exception:  # pragma: no cover - torch missing: the tests skip
        return []
    return sorted(ZOO)


@needs_gcc
@needs_qemu
@pytest.mark.parametrize("name", _zoo_names())
def test_zoo_bound_covers_measured(name, tmp_path):
    kernels = "arm-dsp" if name in ("mbv3_small", "mbv2_blocks", "dscnn") else "portable"
    plan, out = _zoo_plan(name, tmp_path, kernels=kernels)
    check(plan, out, tmp_path, f"{name} ({kernels})")


@needs_gcc
@needs_qemu
def test_training_step_bound_covers_measured(tmp_path):
    plan, out = _zoo_plan("mbv1", tmp_path, training="sparse", kernels="arm-dsp")
    lines = check(plan, out, tmp_path, "mbv1 (sparse training, arm-dsp)")
    assert any("train_step" in line for line in lines)
    assert "MBV1_TRAIN_STEP_STACK_SIZE" in (out / "mbv1.h").read_text()


# -- refusals ---------------------------------------------------------------------------

def _analyze_source(tmp: Path, source: str, target: str = "host"):
    src = tmp / "m.c"
    src.write_text(source)
    objects, cc, flags = stack.compile_for_stack([src], [], target, builddir=tmp / "o")
    return stack.analyze(objects, "m", cc, flags)


@needs_gcc
def test_refuses_recursion(tmp_path):
    with pytest.raises(stack.StackError, match=r"recursion: .*walk.*no bound"):
        _analyze_source(tmp_path, "int walk(int n) { volatile int a[4]; a[n & 3] = n;\n"
                                  "  return n <= 0 ? 0 : walk(n - 1) * a[1] + walk(n - 2) + a[2]; }\n"
                                  "int m_invoke(void) { return walk(7); }\n")


@needs_gcc
def test_refuses_variable_length_array(tmp_path):
    with pytest.raises(stack.StackError, match=r"m_invoke .*dynamic stack frame"):
        _analyze_source(tmp_path, "int m_fill(volatile char *b, int n);\n"
                                  "int m_invoke(int n) { volatile char b[n]; return m_fill(b, n); }\n"
                                  "int m_fill(volatile char *b, int n) { int i; for (i = 0; i < n; ++i) b[i] = 0;"
                                  " return b[0]; }\n")


@needs_gcc
def test_refuses_unknown_callee(tmp_path):
    with pytest.raises(stack.StackError, match=r"calls mcf_nowhere, whose code is neither"):
        _analyze_source(tmp_path, "int mcf_nowhere(int);\nint m_invoke(void) { return mcf_nowhere(3) + 1; }\n")


@needs_gcc
def test_runtime_pointer_reaches_its_files_functions(tmp_path):
    """A call through a pointer to a function of the same file counts that function's frame."""
    got = _analyze_source(tmp_path, """
static int __attribute__((noinline)) big(int x) { volatile int a[200]; a[x & 127] = x; return a[(x + 1) & 127]; }
static int __attribute__((noinline)) small(int x) { return x + 1; }
int m_invoke(int x) { int (*volatile f)(int) = x ? big : small; return f(x); }
""")
    path = [n for n, _ in got["m_invoke"].path]
    assert path[:2] == ["m_invoke", "big"], path
    assert got["m_invoke"].bytes >= 800


def test_without_the_cross_compiler_the_header_says_why(tmp_path):
    """No arm-none-eabi-gcc on PATH: the compile succeeds, warns, and the header defines no
    <NAME>_STACK_SIZE but says why (an application using it then fails to build, visibly)."""
    import sys

    pytest.importorskip("onnx")
    from test_cli import small_onnx

    model = small_onnx(tmp_path / "m.onnx")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "mcuforge", "compile", str(model), "-o", str(tmp_path / "out"),
                          "--name", "net"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(root / "python"), "PATH": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    header = (tmp_path / "out" / "net.h").read_text()
    assert "NET_STACK_SIZE" in header and "#define NET_STACK_SIZE" not in header
    assert "Worst-case stack: not computed (arm-none-eabi-gcc not found" in header
    assert "WARNING: worst-case stack not computed (arm-none-eabi-gcc not found" in res.stderr
    quiet = subprocess.run([sys.executable, "-m", "mcuforge", "-q", "compile", str(model), "-o", str(tmp_path / "q"),
                            "--name", "net"], capture_output=True, text=True,
                           env={"PYTHONPATH": str(root / "python"), "PATH": str(tmp_path)})
    assert quiet.returncode == 0 and "worst-case stack not computed" in quiet.stderr
