"""The ``shale`` command, as installed by the Python package (``python -m shale``)."""

import sys

from . import _native


def main() -> None:
    """Runs the shale command line with this process's arguments."""
    sys.exit(_native.cli_main(sys.argv[1:], [sys.executable, "-m", "shale"]))


if __name__ == "__main__":
    main()
