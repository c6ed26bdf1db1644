"""`west mcuforge …`: the mcuforge command line as a west extension command
(listed in west-commands.yml).

    west mcuforge compile model.onnx -o out [--kconfig build/zephyr/.config] ...
    west mcuforge report  out
    west mcuforge run     out --input x.npy --check [--target qemu-cortex-m4]
    west mcuforge check-elf [ELF] [-d BUILD_DIR] [--model ID] [--sram-budget ...]

The verbs and flags are those of `mcuforge` (same exit codes). `check-elf`
without an ELF reads the west build directory's zephyr/zephyr.elf (-d, or
`build`), and takes the budgets from its .config unless given.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from west.commands import WestCommand

# The generator from this repository, whether or not it is installed in west's Python.
_PYTHON_DIR = Path(__file__).resolve().parents[2]
if str(_PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(_PYTHON_DIR))

VERBS = ("compile", "report", "run", "check-elf")


def _kconfig_budgets(config: Path) -> list[str]:
    """--sram-budget/--flash-budget from a Zephyr .config (0 or absent: none)."""
    args = []
    if not config.is_file():
        return args
    text = config.read_text(errors="replace")
    for symbol, flag in (("CONFIG_MCUFORGE_SRAM_BUDGET_KB", "--sram-budget"),
                         ("CONFIG_MCUFORGE_FLASH_BUDGET_KB", "--flash-budget")):
        m = re.search(rf"^{symbol}=(\d+)$", text, re.M)
        if m and int(m.group(1)) > 0:
            args += [flag, f"{m.group(1)}K"]
    return args


def translate(argv: list[str]) -> list[str]:
    """west's argument list -> the mcuforge CLI's (check-elf defaults from the build directory)."""
    if not argv or argv[0] != "check-elf":
        return list(argv)
    rest = list(argv[1:])
    build = Path("build")
    if "-d" in rest or "--build-dir" in rest:
        i = rest.index("-d") if "-d" in rest else rest.index("--build-dir")
        build = Path(rest[i + 1])
        del rest[i:i + 2]
    positional = [a for k, a in enumerate(rest) if not a.startswith("-")
                  and (k == 0 or rest[k - 1] not in ("--sram-budget", "--flash-budget", "--model", "--report"))]
    if not positional:
        rest.insert(0, str(build / "zephyr" / "zephyr.elf"))
        if "--sram-budget" not in rest and "--flash-budget" not in rest:
            rest += _kconfig_budgets(build / "zephyr" / ".config")
    return ["check-elf", *rest]


class Mcuforge(WestCommand):
    def __init__(self):
        super().__init__("mcuforge", "neural networks to int8 C (mcuforge)", __doc__, accepts_unknown_args=True)

    def do_add_parser(self, parser_adder):
        parser = parser_adder.add_parser(self.name, help=self.help, description=self.description,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("verb", choices=VERBS, help="what to do")
        parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of `mcuforge VERB` (see --help)")
        return parser

    def do_run(self, args, unknown_args):
        from mcuforge.tools.cli import main

        code = main(translate([args.verb, *args.args, *unknown_args]))
        if code:
            sys.exit(code)
