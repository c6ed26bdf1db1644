"""Helpers shared by the benchmark scripts (bench/*.py).

* ``flash_bytes``: .text + .rodata + .data of a generated model's objects
  compiled for Cortex-M4 with arm-none-eabi-gcc -Os (weights + code);
* ``update_readme``: replace the table between ``<!-- bench:<marker>:begin -->``
  and ``<!-- bench:<marker>:end -->`` in whichever page holds them (README.md or docs/*.md);
* ``write_results``: results/<stem>.json and .md, and the docs table.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

if str(ROOT / "python") not in sys.path:
    sys.path.insert(0, str(ROOT / "python"))


def flash_bytes(outdir: Path, name: str) -> int | None:
    """.text + .rodata + .data of the model's objects for Cortex-M4 (-Os)."""
    from mcuforge.codegen.portable import c_sources, include_dirs
    from mcuforge.tools.elfcheck import read_elf

    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        return None
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for src in c_sources(outdir, name):
            obj = Path(tmp) / (src.stem + ".o")
            subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c99", "-ffunction-sections",
                            "-fdata-sections", *[f"-I{d}" for d in include_dirs(outdir)], "-c", str(src),
                            "-o", str(obj)], check=True)
            total += read_elf(obj).flash
    return total


def update_readme(table: str, marker: str) -> bool:
    """Put `table` between the markers of `marker` in README.md or docs/*.md; False when no
    page has them."""
    begin, end = f"<!-- bench:{marker}:begin -->", f"<!-- bench:{marker}:end -->"
    found = False
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        if begin not in text or end not in text:
            continue
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: begin + "\n" + table + end, text,
                      flags=re.S)
        page.write_text(text)
        found = True
    return found


def write_results(stem: str, rows: list[dict], table: str, marker: str) -> None:
    """bench/results/<stem>.json and <stem>.md, and the README table of `marker`."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(table)
    if not update_readme(table, marker):
        print(f"no page (README.md, docs/*.md) has the <!-- bench:{marker}:begin/end --> markers; table not inserted",
              file=sys.stderr)
    print(table)
