"""``python -m mmbench``: see :mod:`mmbench.cli`."""
import sys

from mmbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
