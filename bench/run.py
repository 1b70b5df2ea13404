"""Run every benchmark and print its figures: ``./build.sh bench``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

status = 0
for script in sorted(HERE.glob("bench_*.py")):
    print(f"\n## {script.name}", flush=True)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        status = status or int(exit_.code or 0)
sys.exit(status)
