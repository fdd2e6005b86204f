"""``python -m kernels.benchmark``: see :func:`kernels.benchmark.runner.main`."""
import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
