"""tools/pyodide_lock.py: the lock lists exactly the wheels beside it, with their real hashes."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "pyodide_lock.py"
INFO = {"info": {"abi_version": "2026_0", "arch": "wasm32", "platform": "emscripten_5_0_3", "python": "3.14.2"}}


def make_wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        meta = "\n".join([f"Name: {name}", f"Version: {version}", *[f"Requires-Dist: {r}" for r in requires]])
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", "Metadata-Version: 2.1\n" + meta + "\n")
        wheel.writestr(f"{name}/__init__.py", "")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "shipped.json").write_text(json.dumps(INFO))
    dist = tmp_path / "dist"
    dist.mkdir()
    make_wheel(dist, "alpha", "1.0", ["beta>=2", "colorama; sys_platform == 'win32'", "gamma; sys_platform == 'emscripten'"])
    make_wheel(dist, "beta", "2.1", [])
    make_wheel(dist, "gamma", "0.3", [], tag="cp314-cp314-pyemscripten_2026_0_wasm32")
    return dist


def test_write_then_check(folder: Path) -> None:
    result = run("write", str(folder), "--info-from", str(folder.parent / "shipped.json"))
    assert result.returncode == 0, result.stderr
    lock = json.loads((folder / "pyodide-lock.json").read_text())
    assert lock["info"] == INFO["info"]
    alpha = lock["packages"]["alpha"]
    # Markers are evaluated for Pyodide: the Windows-only one is dropped, the emscripten-only kept.
    assert alpha["depends"] == ["beta", "gamma"]
    assert alpha["imports"] == ["alpha"]
    assert lock["packages"]["gamma"]["file_name"].endswith("pyemscripten_2026_0_wasm32.whl")
    assert run("check", str(folder)).returncode == 0


def test_check_names_a_rebuilt_wheel_a_missing_one_and_an_unlisted_one(folder: Path) -> None:
    assert run("write", str(folder), "--info-from", str(folder.parent / "shipped.json")).returncode == 0
    make_wheel(folder, "beta", "2.1", ["something-new"])  # rebuilt: same name, new bytes
    (folder / "gamma-0.3-cp314-cp314-pyemscripten_2026_0_wasm32.whl").unlink()
    make_wheel(folder, "delta", "1.0", [])
    result = run("check", str(folder))
    assert result.returncode == 1
    assert "beta: beta-2.1-py3-none-any.whl does not match its sha256" in result.stderr
    assert "gamma: gamma-0.3-cp314-cp314-pyemscripten_2026_0_wasm32.whl is listed but missing" in result.stderr
    assert "delta-1.0-py3-none-any.whl is in the folder but not in the lock" in result.stderr


def test_write_refuses_an_incomplete_set(folder: Path) -> None:
    (folder / "beta-2.1-py3-none-any.whl").unlink()
    result = run("write", str(folder), "--info-from", str(folder.parent / "shipped.json"))
    assert result.returncode != 0
    assert "alpha needs beta" in result.stderr


def test_check_without_a_lock_says_what_to_run(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))
    assert result.returncode == 1
    assert "./build.sh dist" in result.stderr
