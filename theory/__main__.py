"""``python -m theory predict ...``: runs the command line of :mod:`selfdistill_cli.predict`.

This entry point is the only place where ``theory/`` imports from the layer above it: it is run
as a program, never imported by library code, so the package itself stays pure maths (no argv,
no printing, no reading of the machine's memory). The imports sit under the ``__main__`` guard
so that importing this module (e.g. by a tool that walks the package) pulls nothing upward.
"""

import sys

if __name__ == "__main__":
    from selfdistill_cli import run_cli
    from selfdistill_cli.predict import main

    sys.exit(run_cli(main))
