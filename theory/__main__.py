"""``python -m theory predict ...`` (see :mod:`theory.cli`)."""

import sys

from theory.cli import main
from theory.cli_util import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main))
