"""Budget messages a Zephyr user can act on: a layer-by-layer plan over its budget says when the
patch-based schedule would fit (and the Kconfig symbol that picks it), and the patch overhead
limit names its Kconfig symbol and mcuforge_add_model argument."""
from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.config import BuildConfig, from_kconfig  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model, plan_model  # noqa: E402
from mcuforge.plan import BudgetError  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402


def _graph(tmp_path, name="mbv2_blocks"):
    module, example = ZOO[name]()
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(2).standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    return from_torch(module, example, name="net"), str(calib)


def test_layer_schedule_over_budget_says_auto_fits(tmp_path):
    graph, calib = _graph(tmp_path)
    layer = plan_model(graph, BuildConfig(name="net", calibration=calib))
    graph, calib = _graph(tmp_path)
    auto = plan_model(graph, BuildConfig(name="net", calibration=calib, schedule="auto",
                                         sram_budget=layer.sram_bytes() - 1))
    assert auto.patch is not None and auto.sram_bytes() < layer.sram_bytes()
    budget = auto.sram_bytes()
    graph, calib = _graph(tmp_path)
    with pytest.raises(BudgetError) as err:
        compile_model(graph, BuildConfig(name="net", calibration=calib, sram_budget=budget), tmp_path / "out")
    msg = str(err.value)
    assert f"needs {layer.sram_bytes()} bytes of SRAM" in msg
    m = re.search(r"the patch-based schedule fits: (\d+) bytes .* \(CONFIG_MCUFORGE_SCHEDULE_AUTO, SCHEDULE auto", msg)
    assert m and int(m.group(1)) == budget, msg
    assert not (tmp_path / "out").exists()


def test_patch_overhead_names_its_kconfig_symbol(tmp_path):
    graph, calib = _graph(tmp_path)
    with pytest.raises(BudgetError) as err:  # nothing fits 1 KiB: the message lists what can change
        plan_model(graph, BuildConfig(name="net", calibration=calib, schedule="auto", sram_budget=1024))
    assert "allow more MAC overhead (--patch-max-overhead (CONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT, " \
           "PATCH_MAX_OVERHEAD of mcuforge_add_model))" in str(err.value)
    conf = tmp_path / ".config"
    conf.write_text("CONFIG_MCUFORGE=y\nCONFIG_MCUFORGE_PATCH_MAX_OVERHEAD_PERCENT=45\n")
    assert from_kconfig(conf)["patch_max_overhead"] == pytest.approx(0.45)
