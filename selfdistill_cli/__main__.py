"""``python -m selfdistill_cli <command> ...``: the ``selfdistill`` console script, uninstalled
(:mod:`selfdistill_cli.main`)."""

import sys

from selfdistill_cli.main import entry_point

if __name__ == "__main__":
    sys.exit(entry_point())
