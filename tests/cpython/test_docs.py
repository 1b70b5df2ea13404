"""The API reference (docs/reference, Sphinx autodoc) builds offline, with no warning, and leaves no name out.

The build runs as ``./build.sh docs`` runs it: warnings are errors, and every cross-reference must
resolve (nitpicky), so a docstring that names a class that does not exist fails here. Then the
inventory Sphinx writes (objects.inv) must hold every public name: the package's ``__all__``, those of
``pyodide_realtime.audio``, ``.testing`` and ``.errors``, and every public method and field that a
public class defines.
"""

from __future__ import annotations

import importlib
import inspect
import os
import posixpath
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "reference"
MODULES = ("pyodide_realtime", "pyodide_realtime.audio", "pyodide_realtime.testing", "pyodide_realtime.errors")


def build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """One fresh build (``-E``: nothing cached) into ``out``; ``PYTHONPATH`` points at this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "sphinx", "-E", "-n", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(out / ".doctrees"), str(source), str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("reference")
    return build(DOCS, out), out


@pytest.fixture(scope="module")
def documented(reference: tuple[subprocess.CompletedProcess[str], Path]) -> set[str]:
    result, out = reference
    assert result.returncode == 0, result.stderr
    with open(out / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", posixpath.join)
    return {name for objects in inventory.values() for name in objects}


def test_the_reference_builds_with_no_warning(reference: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, out = reference
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (out / "index.html").is_file()


def test_every_public_name_is_in_the_reference(documented: set[str]) -> None:
    missing = [f"{module}.{name}" for module in MODULES for name in importlib.import_module(module).__all__
               if f"{module}.{name}" not in documented and f"pyodide_realtime.{name}" not in documented]
    assert missing == []


def own_public_members(cls: type) -> set[str]:
    """The methods, properties and fields that ``cls`` itself defines (inherited ones are its base's).

    Less pydantic's ``model_config``: the models' settings, not part of our API (conf.py leaves it out).
    """
    names = set(vars(cls)) | set(inspect.get_annotations(cls)) | set(vars(cls).get("_fields", ()))
    return {name for name in names if not name.startswith("_") and name != "model_config"}


def test_every_public_method_and_field_is_in_the_reference(documented: set[str]) -> None:
    missing = []
    for module in MODULES:
        for name in importlib.import_module(module).__all__:
            value = getattr(importlib.import_module(module), name)
            if not inspect.isclass(value):
                continue
            owner = f"pyodide_realtime.{name}" if f"pyodide_realtime.{name}" in documented else f"{module}.{name}"
            missing += [f"{owner}.{member}" for member in own_public_members(value) if f"{owner}.{member}" not in documented]
    assert missing == []
    assert "pyodide_realtime.RealtimeSession.send_message" in documented  # the check looks where methods are


def test_a_reference_to_a_name_that_does_not_exist_fails_the_build(tmp_path: Path) -> None:
    """The same configuration, on a page that names a class of ours that does not exist."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(DOCS / "conf.py", source / "conf.py")
    (source / "index.rst").write_text(
        "Broken\n======\n\n.. automodule:: pyodide_realtime.errors\n\n"
        "See :class:`pyodide_realtime.NoSuchSession` and :class:`RealtimeError`.\n"
    )
    result = build(source, tmp_path / "out")
    assert result.returncode != 0
    assert "py:class reference target not found: pyodide_realtime.NoSuchSession" in result.stderr
    assert "RealtimeError" not in result.stderr  # a name that exists resolves, short or not
