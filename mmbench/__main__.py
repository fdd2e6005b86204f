"""``python -m mmbench``: see :mod:`mmbench.cli`."""
import sys

if __name__ == "__main__":
    try:  # Ctrl-C while the command line's modules import: a message, not a traceback
        from mmbench.cli import main
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    sys.exit(main())
