"""The ``strata`` console script of the wheel: the same command line as the Rust binary."""

from __future__ import annotations

import sys

from strata._strata import main as _main


def main() -> None:
    """Runs ``strata`` with the process arguments and exits with its code."""
    sys.exit(_main(sys.argv[1:]))
