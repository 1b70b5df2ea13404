"""Write or check a pyodide-lock.json that lists exactly the wheels in a folder.

The lock shipped with the npm ``pyodide`` package points at wheels that are not in the package and whose
hashes differ from PyPI's, so ``loadPackage`` fails offline with "Failed to fetch". Pyodide resolves
packages by name through this file, checks each wheel's sha256 and fetches it relative to the lock, so a
lock made from the wheels we actually ship makes every load local. ``pyodide lockfile add-wheels`` would
do this but needs Python >= 3.12 and rejects the ``pyemscripten_2026_0_wasm32`` tag (see README).

    python tools/pyodide_lock.py write DIR --info-from SHIPPED_LOCK
    python tools/pyodide_lock.py check DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

LOCK_NAME = "pyodide-lock.json"


def emscripten_environment(python: str) -> dict[str, str]:
    """Marker values as Pyodide reports them, for evaluating Requires-Dist."""
    env = default_environment()
    major_minor = ".".join(python.split(".")[:2])
    env.update(
        sys_platform="emscripten",
        platform_system="Emscripten",
        os_name="posix",
        platform_machine="wasm32",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        python_version=major_minor,
        python_full_version=python,
        implementation_version=python,
    )
    return env


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_entry(path: Path, env: dict[str, str]) -> dict[str, object]:
    name, version, _build, _tags = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = Parser().parsestr(wheel.read(f"{dist_info}/METADATA").decode())
        top_level = f"{dist_info}/top_level.txt"
        if top_level in names:
            imports = [line.strip() for line in wheel.read(top_level).decode().splitlines() if line.strip()]
        else:  # newer wheels omit top_level.txt: the importable top-level names are the root folders/modules
            roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
            imports = sorted(r[:-3] if r.endswith(".py") else r for r in roots if "." not in r or r.endswith(".py"))
    depends = []
    for spec in metadata.get_all("Requires-Dist") or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            depends.append(canonicalize_name(req.name))
    return {
        "name": canonicalize_name(name),
        "version": str(version),
        "file_name": path.name,
        "install_dir": "site",
        "sha256": sha256_of(path),
        "package_type": "package",
        "imports": imports,
        "depends": sorted(set(depends)),
        "unvendored_tests": False,
        "shared_library": False,
    }


def write_lock(folder: Path, info_from: Path) -> Path:
    info = json.loads(info_from.read_text())["info"]
    env = emscripten_environment(info["python"])
    packages = {}
    for wheel in sorted(folder.glob("*.whl")):
        entry = wheel_entry(wheel, env)
        if entry["name"] in packages:
            raise SystemExit(f"error: two wheels for {entry['name']} in {folder}; remove the stale one")
        packages[entry["name"]] = entry
    missing = {
        f"{name} needs {dep}" for name, e in packages.items() for dep in e["depends"] if dep not in packages
    }
    if missing:
        raise SystemExit("error: the browser wheels are incomplete: " + "; ".join(sorted(missing)))
    lock = folder / LOCK_NAME
    lock.write_text(json.dumps({"info": info, "packages": packages}, indent=1, sort_keys=True) + "\n")
    return lock


def check_lock(folder: Path) -> list[str]:
    """Every lock entry has its file with the right hash, and every wheel has an entry."""
    lock = folder / LOCK_NAME
    if not lock.exists():
        return [f"{lock} is missing: run ./build.sh dist"]
    packages = json.loads(lock.read_text())["packages"]
    problems = []
    listed = set()
    for name, entry in packages.items():
        path = folder / entry["file_name"]
        listed.add(entry["file_name"])
        if not path.exists():
            problems.append(f"{name}: {entry['file_name']} is listed but missing")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"{name}: {entry['file_name']} does not match its sha256 (rebuilt wheel, stale lock)")
    for wheel in folder.glob("*.whl"):
        if wheel.name not in listed:
            problems.append(f"{wheel.name} is in the folder but not in the lock")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("folder", type=Path)
    w.add_argument("--info-from", type=Path, required=True, help="the lock shipped with npm pyodide")
    c = sub.add_parser("check")
    c.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        lock = write_lock(args.folder, args.info_from)
        print(f"wrote {lock} ({len(json.loads(lock.read_text())['packages'])} packages)")
        return 0
    problems = check_lock(args.folder)
    for p in problems:
        print(f"lock check: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
