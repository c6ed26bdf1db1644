"""TinyNAS on mcuforge's planner (see search.py and families.py); nothing in the compiler imports
this package.

From Python, `search` runs what `mcuforge nas` runs, with the same options::

    report = mcuforge.nas.search((x, y), sram_budget="2K", flash_budget="16K", out="nas_out",
                                 space="families", time_budget="5m")
    net = mcuforge.nas.load("nas_out")          # the PyTorch network, trained
    model = mcuforge.load("nas_out/c")          # the compiled C: run(), report(), ...
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .run import load

__all__ = ["load", "search"]


def search(data: Any, *, sram_budget: int | str, flash_budget: int | str, out: str | Path,
           quiet: bool = True, **options: Any) -> dict:
    """Search a network for `data` within the budgets and write it to `out` (as `mcuforge nas -o`).

    data: an .npz path (arrays x, y and optionally x_val, y_val) or a tuple (x, y) of arrays:
    x (N, C, H, W) float32 images or (N, C, L) signals, y (N,) integer labels. options: the
    command's flags with underscores (time_budget="10m", space="families", latency_budget=...,
    schedule="auto", seed=0, workers=2, ...); a True value is a bare flag. Returns report.json.
    Errors raise mcuforge.BadInput / mcuforge.OverBudget like the command's exit codes 2 and 3."""
    import numpy as np

    from ..errors import BadInput
    from ..tools.cli import build_parser
    from .run import main_nas

    with tempfile.TemporaryDirectory(prefix="mcuforge-nas-data-") as tmp:
        if isinstance(data, (str, Path)):
            path = Path(data)
        elif isinstance(data, tuple) and len(data) == 2:
            path = Path(tmp) / "data.npz"
            np.savez(path, x=np.asarray(data[0]), y=np.asarray(data[1]))
        else:
            raise BadInput("mcuforge.nas.search: data is an .npz path or a tuple (x, y) of arrays")
        argv = (["-q"] if quiet else []) + ["nas", "--data", str(path), "--sram-budget", str(sram_budget),
                                            "--flash-budget", str(flash_budget), "-o", str(out)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False:
                values = value if isinstance(value, (list, tuple)) else [value]
                argv += [flag, *map(str, values)]
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            raise BadInput(f"mcuforge.nas.search: bad options {options} (see `mcuforge nas --help`)") from None
        if quiet:  # the command's closing line too
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                main_nas(args)
        else:
            main_nas(args)
    return json.loads((Path(out) / "report.json").read_text())
