"""Marks shared by the test modules."""
import pytest

from mcuforge.tools import qemu

# Tests that cross-compile for Cortex-M and run under QEMU.
needs_qemu = pytest.mark.skipif(bool(qemu.tools_missing_reason()), reason=qemu.tools_missing_reason())
