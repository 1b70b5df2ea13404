"""Shared by every test: import the package from src/ (no install step between an edit and a test run),
and keep hypothesis's caches out of the work tree (in .cache/, with the build's other caches)."""

import sys
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))  # chromium.py: the browser flags every test shares
#: Hypothesis writes its unicode tables (and, unless told otherwise, its example database) to
#: ``./.hypothesis`` by default: here instead.
HYPOTHESIS_HOME = ROOT / ".cache" / "hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_HOME)
