"""Every code block of README.md and docs/*.md runs here, so the docs cannot go stale.

Conventions (docs/extending.md, "Writing docs", says the same for authors):

* Each page runs in its own temporary working directory, its blocks in the page's order
  (a sh block may write what a later python block reads). The directory starts with these
  fixtures, built once per session:
    - ``model.onnx``: a float CNN, input ``x`` NCHW 1x3x12x12, output 5 logits
      (conv 3x3 -> ReLU -> conv 3x3 stride 2 -> ReLU -> global average pool -> Gemm);
    - ``calib.npy``: 16 calibration samples (16, 3, 12, 12) float32; ``x.npy``: one (1, 3, 12, 12);
    - ``model.tflite``: a Keras-style int8 MobileNetV3-small block stack (``zoo.mbv3_small_tflite()``).
* ```python blocks of a page run in order in one namespace. A block whose first line starts
  with ``>>>`` is a doctest (its outputs are compared; ELLIPSIS and NORMALIZE_WHITESPACE on).
* ```sh and ```console blocks: every command runs with bash in the page's directory, where
  ``mcuforge`` is this Python's ``python -m mcuforge`` and ``python`` this Python; in console
  blocks only the lines starting with ``$ `` are commands (the rest is sample output). A plain
  ``mcuforge ...`` command (no pipe or redirection) runs through ``mcuforge.tools.cli.main``, the
  console script's entry point, in this process (saving a Python start per command). A command
  must exit 0; a comment ``# exit N`` at its end (``# exit N: why`` too) says it must exit N. Lines ending in ``\\`` are
  joined. ``make <target>`` is not run (it would bootstrap the machine): the target must exist in
  the Makefile.
* ```c blocks are compiled with ``gcc -std=c99 -Wall -Wextra -Werror -fsyntax-only``. Each
  ``#include "<name>.h"`` is a generated header: ``model.onnx`` compiled with ``--name <name>``
  plus the options of a ``/* mcuforge compile: OPTIONS */`` comment in the block (e.g.
  ``--training bias``).
* ```cmake blocks: every function named ``mcuforge_*`` exists in cmake/mcuforge.cmake, every
  keyword given to ``mcuforge_add_model`` is one of its arguments, an ``include(.../cmake/X)``
  names a file of the repository.
* ```kconfig blocks (prj.conf fragments): every line is a comment line or ``CONFIG_X=value``
  (Kconfig allows no comment after a value); every ``CONFIG_MCUFORGE_*`` symbol exists in
  zephyr_module/Kconfig and the value fits its type.
* Outside blocks, every ``CONFIG_MCUFORGE_*`` and every ``--flag`` a page names must exist (the
  flags in mcuforge's parser), and links between pages must resolve.
* ```text blocks (and blocks without a language) are not run: output samples, and commands that
  need a Zephyr tree or hours. The test still checks that each ``west <verb>`` there names a verb
  west has, and each ``west mcuforge <verb>`` one of tools/west_command.py's VERBS.
"""
from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "sh", "console", "c", "cmake", "kconfig", "text", ""}

# west's own verbs (west 1.x built-ins and the extension commands of Zephyr's tree)
WEST_VERBS = {"init", "update", "list", "manifest", "diff", "status", "forall", "config", "topdir",
              "selfupdate", "help", "build", "flash", "debug", "debugserver", "attach", "boards", "twister",
              "sign", "blobs", "spdx", "completion", "zephyr-export", "sdk", "mcuforge"}


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, text, line number of the opening fence) of every fenced block."""
    out, lang, start, body = [], None, 0, []
    for i, line in enumerate(page.read_text().split("\n"), 1):
        m = re.match(r"^(\s*)```(.*)$", line)
        if lang is None and m:
            lang, start, body, indent = m.group(2).strip(), i, [], len(m.group(1))
        elif lang is not None and m and not m.group(2).strip():
            out.append((lang, "\n".join(b[indent:] if b[:indent].isspace() else b for b in body), start))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{page.name}:{start}: unclosed ``` block"
    return out


# -- fixtures -------------------------------------------------------------------------------

def small_cnn(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w1", rng.standard_normal((8, 3, 3, 3)) * 0.4), ("b1", rng.standard_normal(8) * 0.1),
        ("w2", rng.standard_normal((16, 8, 3, 3)) * 0.2), ("b2", rng.standard_normal(16) * 0.1),
        ("fw", rng.standard_normal((5, 16)) * 0.3), ("fb", rng.standard_normal(5) * 0.1)]]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory) -> Path:
    from mcuforge import zoo

    d = tmp_path_factory.mktemp("docs-fixtures")
    small_cnn(d / "model.onnx")
    rng = np.random.default_rng(1)
    np.save(d / "calib.npy", rng.standard_normal((16, 3, 12, 12)).astype(np.float32))
    np.save(d / "x.npy", rng.standard_normal((1, 3, 12, 12)).astype(np.float32))
    (d / "model.tflite").write_bytes(zoo.mbv3_small_tflite())
    return d


# -- runners --------------------------------------------------------------------------------

def run_python(text: str, where: str, ns: dict) -> None:
    if text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(text, ns, where, where, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        lines: list[str] = []
        runner.run(test, out=lines.append, clear_globs=False)
        assert runner.failures == 0, f"{where}: doctest failed\n" + "".join(lines)
        ns.update(test.globs)
    else:
        exec(compile(text, where, "exec"), ns)


def commands(text: str, console: bool) -> list[str]:
    joined, cmds = text.replace("\\\n", " ").split("\n"), []
    for line in joined:
        if console:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.strip() and not line.lstrip().startswith("#"):
            cmds.append(line.strip())
    return cmds


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_-]+):", (ROOT / "Makefile").read_text(), re.M))


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`mcuforge ARGS` through mcuforge.tools.cli.main (the console script's entry point)."""
    from mcuforge.tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse: --help, usage errors
            code = stop.code if isinstance(stop.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def run_sh(text: str, where: str, cwd: Path, console: bool) -> None:
    prelude = (f'mcuforge() {{ {shlex.quote(sys.executable)} -m mcuforge "$@"; }}\n'
               f'python() {{ {shlex.quote(sys.executable)} "$@"; }}\nset -o pipefail\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])}
    for cmd in commands(text, console):
        m = re.search(r"#\s*exit\s+(\d+)\b[^#]*$", cmd)
        expected = int(m.group(1)) if m else 0
        words = shlex.split(cmd, comments=True)
        while words and re.fullmatch(r"\w+=\S*", words[0]):
            words = words[1:]
        if words and words[0] == "make":
            targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            missing = set(targets) - make_targets()
            assert not missing, f"{where}: `{cmd}`: no target {sorted(missing)} in the Makefile"
            continue
        if words and words[0] == "mcuforge" and not re.search(r"[|<>;&$`]", cmd.split("#")[0]):
            code, out, err = run_cli(words[1:])  # the console script's own main(), without a new Python
        else:
            res = subprocess.run(["bash", "-c", prelude + cmd], cwd=cwd, env=env, capture_output=True, text=True,
                                 timeout=300)
            code, out, err = res.returncode, res.stdout, res.stderr
        assert code == expected, (f"{where}: `{cmd}` exited {code}, the page says {expected}\n{out[-3000:]}\n"
                                  f"{err[-3000:]}")


_headers: dict[tuple[str, str], Path] = {}


def generated_header(name: str, options: str, fixtures: Path, tmp: Path) -> Path:
    key = (name, options)
    if key not in _headers:
        out = tmp / f"c-{name}-{len(_headers)}"
        res = subprocess.run([sys.executable, "-m", "mcuforge", "-q", "compile", str(fixtures / "model.onnx"),
                              "-o", str(out), "--name", name, "--calibration", str(fixtures / "calib.npy"),
                              *shlex.split(options)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        _headers[key] = out
    return _headers[key]


def run_c(text: str, where: str, fixtures: Path, tmp: Path) -> None:
    m = re.search(r"/\*\s*mcuforge compile:(.*?)\*/", text)
    options = m.group(1).strip() if m else ""
    include = []
    for name in re.findall(r'#include\s+"(\w+)\.h"', text):
        out = generated_header(name, options, fixtures, tmp)
        include += [f"-I{d}" for d in [out, *[p for p in out.iterdir() if p.is_dir()]]]
        include += [f"-I{p}" for p in out.glob("*/include")]
    src = tmp / "block.c"
    src.write_text(text + "\n")
    res = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", *include, str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"{where}: the C block does not compile\n{res.stderr}"


def cmake_arguments() -> tuple[set[str], set[str]]:
    text = (ROOT / "cmake" / "mcuforge.cmake").read_text()
    functions = set(re.findall(r"^function\((\w+)", text, re.M))
    m = re.search(r'cmake_parse_arguments\(PARSE_ARGV 1 MF "([^"]*)"\s*"([^"]*)"', text)
    keywords = set(m.group(1).split(";")) | set(m.group(2).replace("\\\n", "").split(";"))
    return functions, keywords


def run_cmake(text: str, where: str) -> None:
    functions, keywords = cmake_arguments()
    for fn, args in re.findall(r"\b(mcuforge_\w+)\s*\(([^)]*)\)", text):
        assert fn in functions, f"{where}: {fn}() is not a function of cmake/mcuforge.cmake"
        if fn == "mcuforge_add_model":
            words = args.split()[1:]
            for w in words:
                if re.fullmatch(r"[A-Z][A-Z_]+", w):
                    assert w in keywords, f"{where}: mcuforge_add_model has no argument {w}"
    for path in re.findall(r"include\(([^)]*)\)", text):
        tail = re.search(r"(cmake/[\w.-]+)$", path.strip())
        assert tail and (ROOT / tail.group(1)).is_file(), f"{where}: include({path}): no such file in the repository"


def kconfig_symbols() -> dict[str, str]:
    """CONFIG symbol -> type (bool, int, string) of zephyr_module/Kconfig."""
    out, current = {}, None
    for line in (ROOT / "zephyr_module" / "Kconfig").read_text().split("\n"):
        m = re.match(r"^\s*(?:menu)?config\s+(\w+)", line)
        if m:
            current = m.group(1)
            out[current] = "bool" if line.lstrip().startswith("menuconfig") else ""
            continue
        m = re.match(r"^\s*(bool|int|string|hex)\b", line)
        if m and current and not out[current]:
            out[current] = m.group(1)
    return out


def run_kconfig(text: str, where: str) -> None:
    symbols = kconfig_symbols()
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"CONFIG_(\w+)=(\S+|\"[^\"]*\")", line.strip())
        assert m, f"{where}: `{line}` is not CONFIG_X=value (Kconfig fragments allow no trailing comment)"
        name, value = m.groups()
        if not name.startswith("MCUFORGE"):
            continue  # Zephyr's own symbols need a Zephyr tree
        assert name in symbols, f"{where}: CONFIG_{name} is not in zephyr_module/Kconfig"
        kind = symbols[name]
        ok = {"bool": value in ("y", "n"), "int": re.fullmatch(r"-?\d+", value) is not None,
              "string": value.startswith('"') and value.endswith('"')}.get(kind, True)
        assert ok, f"{where}: CONFIG_{name}={value} does not fit its type {kind}"


def check_text(text: str, where: str) -> None:
    from mcuforge.tools.west_command import VERBS

    for line in text.split("\n"):
        m = re.match(r"^\s*(?:\$ )?(?:\w+=\S+\s+)*west\s+(\S+)(?:\s+(\S+))?", line)
        if not m:
            continue
        verb = m.group(1)
        assert verb in WEST_VERBS, f"{where}: `west {verb}` is not a west command"
        if verb == "mcuforge":
            assert m.group(2) in VERBS, f"{where}: `west mcuforge {m.group(2)}`: the verbs are {VERBS}"


# -- the test -------------------------------------------------------------------------------

def test_pages_exist():
    names = {p.name for p in PAGES}
    for page in ["zephyr.md", "cli.md", "c-api.md", "python-api.md", "patch.md", "training.md", "nas.md",
                 "kernels.md", "memory.md", "robustness.md", "benchmarks.md", "extending.md", "operators.md"]:
        assert page in names, f"docs/{page} is missing"


def test_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"\w+://", target):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: link to {target}: no such file"


def test_kconfig_symbols_in_prose():
    """Every CONFIG_MCUFORGE_* named anywhere in the pages (tables and text too) exists."""
    symbols = kconfig_symbols()
    for page in PAGES:
        for name in re.findall(r"CONFIG_(MCUFORGE\w*)", page.read_text()):
            assert name.rstrip("_") in symbols, f"{page.relative_to(ROOT)}: CONFIG_{name} is not in zephyr_module/Kconfig"


OTHER_TOOLS_FLAGS = {"--gc-sections"}  # the linker's, named in docs/zephyr.md


def test_flags_in_prose():
    """Every --flag the pages name (text and tables too) is one of mcuforge's, so a renamed
    option cannot survive in the docs."""
    import argparse

    from mcuforge.tools.cli import build_parser

    flags = set(OTHER_TOOLS_FLAGS)

    def walk(parser):
        for action in parser._actions:
            flags.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    for page in PAGES:
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", page.read_text()):
            assert flag in flags, f"{page.relative_to(ROOT)}: {flag} is not an option of mcuforge"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page(page: Path, fixtures: Path, tmp_path: Path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(fixtures, work)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(ROOT / "python"))
    ns: dict = {"__name__": "__docs__"}
    code = "\n".join(text for lang, text, _ in blocks(page) if lang in ("python", "sh", "console"))
    for needle, tool in [("qemu-cortex-m", "qemu-system-arm"), ("qemu-cortex-m", "arm-none-eabi-gcc"),
                         ("arm-none-eabi-", "arm-none-eabi-gcc"), ("flash_bytes", "arm-none-eabi-gcc")]:
        if needle in code and shutil.which(tool) is None:
            pytest.skip(f"{page.relative_to(ROOT)} runs {tool}, which is not installed (make test installs it)")
    with one_torch_thread():
        run_page(page, work, fixtures, tmp_path, ns)


@contextlib.contextmanager
def one_torch_thread():
    """The examples' PyTorch training is small and the machine may be busy: one thread while a
    page runs, the caller's setting back afterwards (other tests in this process keep theirs)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_page(page: Path, work: Path, fixtures: Path, tmp_path: Path, ns: dict) -> None:
    for lang, text, line in blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        assert lang in LANGUAGES, f"{where}: unknown block language '{lang}' (one of {sorted(LANGUAGES)})"
        if lang == "python":
            run_python(text, where, ns)
        elif lang in ("sh", "console"):
            run_sh(text, where, work, lang == "console")
        elif lang == "c":
            run_c(text, where, fixtures, tmp_path)
        elif lang == "cmake":
            run_cmake(text, where)
        elif lang == "kconfig":
            run_kconfig(text, where)
        else:
            check_text(text, where)
