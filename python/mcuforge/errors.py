"""The errors a user can act on, one class per exit code (DESIGN.md).

``BadInput`` (exit 2): the model file, an option or the data is wrong; the message names it.
``OverBudget`` (exit 3): the model does not fit; the message gives the numbers and what to change.
Anything else that escapes is a bug (exit 1).
"""
from __future__ import annotations


class McuforgeError(Exception):
    """An error the user can act on. The CLI prints ``str(err)`` as one line.

    ``exit_code`` follows DESIGN.md: 2 bad input or usage, 3 does not fit.
    """

    exit_code = 2


class UnsupportedModelError(McuforgeError):
    """One or more nodes cannot be compiled; the message lists all of them."""


class BudgetError(McuforgeError):
    exit_code = 3


# The names the Python API documents.
BadInput = McuforgeError
OverBudget = BudgetError
