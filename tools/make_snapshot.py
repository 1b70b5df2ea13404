"""Make a Pyodide memory snapshot with a package installed and imported, for a page to restore.

    python tools/make_snapshot.py DIST OUT [--package pyodide-realtime]

DIST is a Pyodide folder with our lock (``dist/pyodide`` after ``./build.sh dist``). OUT becomes a
self-contained snapshot folder: ``manifest.json``, ``pyodide.snapshot`` (the wasm memory), the native
libraries taken out of their wheels (pydantic_core's ``.so``) and ``snapshot_loader.mjs``, which a page
imports to restore it (its header says how, and why the method is what it is). The wheels themselves
stay in DIST: a restore fetches the pure-Python ones from there.

Here: resolve the package's dependencies from the lock, take the ``.so`` files out, write the manifest.
Then ``tools/make_snapshot.mjs`` (Node) boots Pyodide with the libraries preloaded, installs, imports
and warms the package up, makes the snapshot and checks a restore of it; its figures are printed as one
JSON line. A snapshot only fits the Pyodide build that made it (Pyodide checks its build id) and the
exact wheel bytes (zipimport keeps offsets into them): remake it whenever either changes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

TOOLS = Path(__file__).resolve().parent
LOADER = TOOLS / "snapshot_loader.mjs"
SNAPSHOT_NAME = "pyodide.snapshot"

#: Run once before the snapshot, in a throwaway namespace: what a page would otherwise pay at start.
#: pydantic defers its plugin loader and more to the first model class: paid here too.
WARM_UP = """
from pydantic import BaseModel
class _WarmUp(BaseModel):
    x: int
from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime.events import parse_server_event
parse_server_event('{"type": "input_audio_buffer.cleared", "event_id": "ev_1"}')
"""

#: Run after each check restore; its value (a str) is printed: the restored client works.
CHECK = """
import sys
from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime.events import parse_server_event
_event = parse_server_event('{"type": "input_audio_buffer.cleared", "event_id": "ev_2"}')
_transport = OpenAIRealtimeWebSocket()
_check = f"{type(_event).__name__} {_event.event_id} status={_transport.status} {len(sys.modules)} modules"
del _event, _transport
_check
"""


def dependency_order(lock: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The lock's entries for ``name`` and what it depends on, dependencies first."""
    packages: dict[str, Any] = lock["packages"]
    order: list[dict[str, Any]] = []

    def visit(package: str) -> None:
        entry = packages[package]
        if entry in order:
            return
        for dependency in entry["depends"]:
            visit(dependency)
        order.append(entry)

    visit(name)
    return order


def prepare(dist: Path, out: Path, package: str) -> dict[str, Any]:
    """Fill OUT with the native libraries and the loader; return the manifest (not yet with handles)."""
    lock = json.loads((dist / "pyodide-lock.json").read_text())
    python = ".".join(lock["info"]["python"].split(".")[:2])
    site_packages = f"/lib/python{python}/site-packages"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    wheels: list[dict[str, Any]] = []
    libraries: list[dict[str, str]] = []
    for entry in dependency_order(lock, package):
        if entry["install_dir"] != "site":
            raise SystemExit(f"error: {entry['name']} installs into {entry['install_dir']!r}: only 'site' is supported")
        with zipfile.ZipFile(dist / entry["file_name"]) as wheel:
            native = sorted(n for n in wheel.namelist() if n.endswith(".so"))
            for member in native:
                file = PurePosixPath(member).name
                (out / file).write_bytes(wheel.read(member))
                libraries.append({"path": f"{site_packages}/{member}", "file": file})
        wheels.append({"file": entry["file_name"], "sha256": entry["sha256"], "on_path": not native})
    shutil.copy(LOADER, out / LOADER.name)
    manifest: dict[str, Any] = {
        "package": package,
        "python": lock["info"]["python"],
        "site_packages": site_packages,
        "snapshot": SNAPSHOT_NAME,
        "wheels": wheels,
        "libraries": libraries,
        "warm_up": WARM_UP,
        "check": CHECK,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def make_snapshot(dist: Path, out: Path, package: str = "pyodide-realtime") -> dict[str, Any]:
    """Prepare OUT and make the snapshot under Node; the figures of tools/make_snapshot.mjs.

    Raises ``RuntimeError`` with Node's error output when the snapshot cannot be made or restored.
    """
    prepare(dist, out, package)
    done = subprocess.run(["node", str(TOOLS / "make_snapshot.mjs"), str(dist), str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip() or done.stdout.strip())[-2000:])
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--package", default="pyodide-realtime")
    args = parser.parse_args()
    try:
        figures = make_snapshot(args.dist.resolve(), args.out.resolve(), args.package)
    except RuntimeError as error:
        print(f"error: the snapshot failed:\n{error}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
