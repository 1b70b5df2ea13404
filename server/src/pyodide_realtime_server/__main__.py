"""``python -m pyodide_realtime_server``: see ``_cli``."""

import sys

from ._cli import run

if __name__ == "__main__":
    sys.exit(run())
