"""Run every benchmark and print its figures: ``./build.sh bench``.

Every figure is a median over rounds, printed with its spread. Absolute times follow the machine: on
this 2-core machine, with other work running, microseconds and milliseconds grow (by half or more when
the load average passes the core count), while ratios measured within one round against a reference
in the same page move far less. Each benchmark prints the load average beside its figures; compare
runs by their ratios, and absolute figures only between quiet runs.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

one, five, _ = os.getloadavg()
print(f"benchmarks on {os.cpu_count()} cores, load average {one:.2f} (1 min), {five:.2f} (5 min)")
print("figures: medians over rounds with min, max and spread; compare runs by their ratios (see bench/run.py)")
status = 0
for script in sorted(HERE.glob("bench_*.py")):
    print(f"\n## {script.name}", flush=True)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        status = status or int(exit_.code or 0)
    except Exception:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        status = 1
sys.exit(status)
