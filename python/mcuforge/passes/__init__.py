"""Graph passes, registered as plugins (``registry.Pass``) and run in order.

* ``canonicalize`` (order 10): fold BatchNorm, fuse activations and zero
  pads, fold flatten layout changes into fully-connected weights, drop
  identity reshapes/transposes. Its output uses only the canonical ops of
  ``ir.py``.
"""
