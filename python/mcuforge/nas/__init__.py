"""TinyNAS on mcuforge's planner (see search.py); nothing in the compiler imports this package."""
from .run import load

__all__ = ["load"]
