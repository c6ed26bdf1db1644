"""The generator's version, written into every generated file and report."""
__version__ = "0.1.0"
