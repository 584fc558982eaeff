"""``python -m theory predict ...`` (see :mod:`theory.cli`)."""

import sys

from selfdistill_cli import run_cli
from theory.cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
