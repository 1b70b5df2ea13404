"""tools/precompile.py: wheels rewritten with Pyodide's own bytecode, byte for byte reproducible, with a
true RECORD, and imported from that bytecode in Pyodide (under Node, as build.sh runs it)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "precompile.mjs"
#: The dist's Pyodide: its standard library is already bytecode, so each Node boot here costs less than
#: half the CPU of one from node_modules/pyodide (whose stdlib compiles at every import: 2.8 s against
#: 5.5-7 s measured). The bytecode the tool writes is the same: the same Pyodide compiles it.
PYODIDE = ROOT / "dist" / "pyodide"
SOURCE = b"VALUE = 42\n"
#: pyc header flags: hash-based (bit 0), source never checked (bit 1 clear).
UNCHECKED_HASH_FLAGS = 1

#: Installs each wheel in turn in one Pyodide and runs CHECK_PY after each: one boot for every wheel.
IMPORT_CHECK = """
import { readFileSync } from "node:fs";
const [pyodideDir, code, ...wheels] = process.argv.slice(1);
const { loadPyodide } = await import(pyodideDir + "/pyodide.mjs");
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });
const answers = [];
for (const wheel of wheels) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: "/lib/python3.14/site-packages" });
  answers.push(JSON.parse(pyodide.runPython(code)));
}
console.log(JSON.stringify(answers));
"""
#: Writes another source over the installed one before the import: a module imported from the
#: wheel's bytecode still says 42. Then removes the package, for the next wheel.
CHECK_PY = """
import importlib, json, os, shutil, sys, sysconfig
package = os.path.join(sysconfig.get_path("purelib"), "alpha")
src = os.path.join(package, "mod.py")
had_source = os.path.exists(src)
if had_source:
    with open(src, "w") as f:
        f.write("VALUE = 0\\n")
importlib.invalidate_caches()
import alpha.mod
answer = json.dumps({"value": alpha.mod.VALUE, "had_source": had_source, "file": alpha.mod.__spec__.origin})
for name in ("alpha.mod", "alpha"):
    del sys.modules[name]
shutil.rmtree(package)
answer
"""


def make_wheel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("alpha/__init__.py", "")
        wheel.writestr("alpha/mod.py", SOURCE)
        wheel.writestr("alpha/shim.js", "export {};\n")
        wheel.writestr("alpha-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n")
        wheel.writestr("alpha-1.0.dist-info/RECORD", "stale,,\n")
    return path


def precompile(*args: str | Path) -> None:
    result = subprocess.run(["node", str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def check_record(wheel: zipfile.ZipFile) -> None:
    rows = list(csv.reader(io.StringIO(wheel.read("alpha-1.0.dist-info/RECORD").decode())))
    listed = {row[0] for row in rows}
    assert listed == set(wheel.namelist())
    for name, digest, size in rows:
        if name.endswith("RECORD"):
            continue
        data = wheel.read(name)
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert int(size) == len(data)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three wheels precompiled in one run of the tool (one Pyodide boot): two pyc-only, one keeping its
    sources. Every test of the module reads these."""
    if shutil.which("node") is None or not (PYODIDE / "pyodide.mjs").exists():
        pytest.fail("node and dist/pyodide are needed: run ./build.sh dist")
    work = tmp_path_factory.mktemp("precompile")
    wheels = {
        "pyc-only": make_wheel(work / "a" / "alpha-1.0-py3-none-any.whl"),
        "again": make_wheel(work / "b" / "alpha-1.0-py3-none-any.whl"),
        "keep-source": make_wheel(work / "c" / "alpha-1.0-py3-none-any.whl"),
    }
    precompile(PYODIDE, wheels["pyc-only"], wheels["again"], "--keep-source", wheels["keep-source"])
    return wheels


@pytest.fixture(scope="module")
def imported(compiled: dict[str, Path]) -> dict[str, dict[str, object]]:
    """What Pyodide imported from each kind of wheel (one boot for both)."""
    kinds = ["pyc-only", "keep-source"]
    result = subprocess.run(
        ["node", "--input-type=module", "-e", IMPORT_CHECK, str(PYODIDE.resolve()), CHECK_PY,
         *(str(compiled[kind]) for kind in kinds)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]  # Node prints the whole minified line first
    answers: list[dict[str, object]] = json.loads(result.stdout.strip().splitlines()[-1])
    return dict(zip(kinds, answers, strict=True))


def test_pyc_only_wheel_is_reproducible_has_no_source_and_a_true_record(compiled: dict[str, Path]) -> None:
    assert compiled["pyc-only"].read_bytes() == compiled["again"].read_bytes()
    with zipfile.ZipFile(compiled["pyc-only"]) as wheel:
        names = set(wheel.namelist())
        assert {"alpha/__init__.pyc", "alpha/mod.pyc", "alpha/shim.js"} <= names
        assert not any(n.endswith(".py") for n in names)
        header = wheel.read("alpha/mod.pyc")[:16]
        assert int.from_bytes(header[4:8], "little") == UNCHECKED_HASH_FLAGS
        assert {info.date_time for info in wheel.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        check_record(wheel)


def test_keep_source_wheel_has_both_and_a_true_record(compiled: dict[str, Path]) -> None:
    with zipfile.ZipFile(compiled["keep-source"]) as wheel:
        names = set(wheel.namelist())
        assert {"alpha/mod.py", "alpha/__pycache__/mod.cpython-314.pyc"} <= names
        assert wheel.read("alpha/mod.py") == SOURCE
        check_record(wheel)


@pytest.mark.parametrize("kind", ["pyc-only", "keep-source"])
def test_pyodide_imports_the_bytecode(imported: dict[str, dict[str, object]], kind: str) -> None:
    # 42: the bytecode, not the source written over it after install.
    assert imported[kind] == {"value": 42, "had_source": kind == "keep-source",
                              "file": "/lib/python3.14/site-packages/alpha/mod." + ("pyc" if kind == "pyc-only" else "py")}


def test_an_unknown_option_is_refused_with_the_usage(tmp_path: Path) -> None:
    result = subprocess.run(["node", str(TOOL), "--keep-sources", str(PYODIDE), str(tmp_path / "x.whl")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown option --keep-sources" in result.stderr and "usage:" in result.stderr
