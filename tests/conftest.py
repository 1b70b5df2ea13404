"""Shared by every test: import the package from src/ (no install step between an edit and a test run)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))  # chromium.py: the browser flags every test shares
