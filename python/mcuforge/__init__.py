"""mcuforge: neural networks to dependency-free int8 C for microcontrollers."""

__version__ = "0.1.0"
