"""Precompile wheels (and the stdlib zip) for Pyodide, as Pyodide ships its own packages: imports skip
compiling.

Runs INSIDE Pyodide (its CPython is the one whose bytecode the browser loads; ``tools/precompile.mjs``
starts it under Node). Two ways to rewrite a wheel:

- pyc-only (the dependencies, served only with our lock to this Pyodide): every ``.py`` becomes a
  sourceless ``pkg/mod.pyc`` at the same place, which the import system loads directly;
- ``keep_source`` (our own wheel, which users may also install elsewhere: its ``py3-none-any`` tag must
  stay true): the ``.py`` stays and ``pkg/__pycache__/mod.cpython-314.pyc`` joins it, marked "unchecked
  hash" so the import never reads the source to validate it; other Pythons ignore it.

The npm ``pyodide`` package's ``python_stdlib.zip`` holds sources only: it gets the pyc-only treatment
too (every stdlib import in a page otherwise compiles its module first). In a wheel, RECORD lists the
new files with their hashes, and the zip is written deterministically (sorted names,
one fixed timestamp, fixed modes), so the same input gives the same bytes and the lock's sha256 only
changes with the code.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import marshal
import sys
import sysconfig
import zipfile
from pathlib import PurePosixPath

#: Zip entries older than 1980 are not allowed; every entry gets this timestamp (as SOURCE_DATE_EPOCH
#: of 1980-01-01 would).
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644 << 16
#: Bytecode optimisation level: 0 keeps asserts and docstrings (pydantic reads docstrings at runtime).
OPTIMIZE = 0


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _bytecode(source: bytes, filename: str) -> bytes:
    """A sourceless pyc: header (magic, flags, source hash: 16 bytes) and the marshalled code.

    ``filename`` is where the module will live once installed: tracebacks name it.
    """
    code = compile(source, filename, "exec", dont_inherit=True, optimize=OPTIMIZE)
    # flags 0b01 = hash-based; 0b10 clear = the hash is never checked (there is no source to check).
    header = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(source)
    return header + marshal.dumps(code)


def compile_wheel(data: bytes, keep_source: bool = False) -> bytes:
    """The precompiled version of the wheel whose bytes are ``data`` (see the module docstring)."""
    return compile_archive(data, sysconfig.get_path("purelib"), keep_source)


def compile_archive(data: bytes, install_dir: str, keep_source: bool = False) -> bytes:
    """The precompiled version of a wheel, or of a zip on sys.path (Pyodide's python_stdlib.zip, which
    the npm package ships as sources only) whose modules are imported from ``install_dir``."""
    files: dict[str, bytes] = {}
    record_name = None
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        for info in wheel.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            content = wheel.read(info)
            path = PurePosixPath(name)
            # Scripts in *.data/ are not imported; only package modules are compiled.
            if path.suffix == ".py" and ".data/" not in name:
                try:
                    code = _bytecode(content, f"{install_dir}/{name}")
                except SyntaxError:  # not a module (a template, a test fixture): shipped as it is
                    files[name] = content
                    continue
                if keep_source:
                    files[name] = content
                    files[importlib.util.cache_from_source(name)] = code
                else:
                    files[str(path.with_suffix(".pyc"))] = code
            else:
                files[name] = content
    if record_name is not None:
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        for name in sorted(files):
            writer.writerow([name, _record_hash(files[name]), str(len(files[name]))])
        writer.writerow([record_name, "", ""])
        files[record_name] = record.getvalue().encode()
    out = io.BytesIO()
    # RECORD last, dist-info after the code, as wheel tools write them.
    order = sorted(files, key=lambda n: (n == record_name, ".dist-info/" in n, n))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name in order:
            info = zipfile.ZipInfo(name, ZIP_TIMESTAMP)
            info.external_attr = FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, files[name])
    return out.getvalue()


def main(paths: list[str], keep_source: bool = False) -> None:
    if sys.platform != "emscripten":
        raise SystemExit("tools/precompile.py runs inside Pyodide: use tools/precompile.mjs")
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".whl"):
            compiled = compile_wheel(data, keep_source)
        else:  # the standard library's zip: imported from its place on sys.path
            zip_entry = next(p for p in sys.path if p.endswith(".zip"))
            compiled = compile_archive(data, zip_entry, keep_source)
        with open(path, "wb") as f:
            f.write(compiled)
        print(f"precompiled {path.rsplit('/', 1)[-1]}: {len(data):,} -> {len(compiled):,} bytes")
