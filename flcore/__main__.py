"""`python -m flcore`: the command line (flcore/cli/)."""

from flcore.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
