"""`python -m mcuforge ...`: the command line (the generator CMake runs at build time)."""
import sys

from .tools.cli import main

sys.exit(main())
