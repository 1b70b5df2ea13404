"""Make a Pyodide memory snapshot with a package installed and imported, for a page to restore.

    python tools/make_snapshot.py DIST OUT [--package pyodide-realtime]

DIST is a Pyodide folder with our lock (``dist/pyodide`` after ``./build.sh dist``). OUT becomes a
self-contained snapshot folder: ``manifest.json``, ``pyodide.snapshot`` (the wasm memory), the native
libraries taken out of their wheels (pydantic_core's ``.so``, named ``*.so.wasm``) and ``snapshot_loader.mjs``, which a page
imports to restore it (its header says how, and why the method is what it is). The wheels themselves
stay in DIST: a restore fetches the pure-Python ones from there.

Here: resolve the package's dependencies from the lock, take the ``.so`` files out, write the manifest.
Then, in a headless Chromium page (``--in chromium``, the default) or under Node (``--in node``,
``tools/make_snapshot.mjs``), ``makeSnapshot`` of the loader boots Pyodide with the libraries preloaded,
installs, imports and warms the package up and makes the snapshot; a restore of it is checked in the
same engine, and the figures are printed as one JSON line. A snapshot restores only in an engine whose
wasm function table matches the maker's (the loader checks): Node 20 lacks the wasm GC that gives
CPython its call trampoline in browsers, so a Node-made snapshot fails in Chromium. A snapshot only fits the Pyodide build that made it (Pyodide checks its build id) and the
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

#: Run in a restored page with ``ws_url`` and ``key`` set: one turn with the local Realtime server. Its
#: value: [the turn's status, how many events, their types in order of arrival, the reply's text].
CONVERSE = """
import asyncio
from pyodide_realtime import OpenAIRealtimeWebSocket
transport = OpenAIRealtimeWebSocket(url=ws_url + "?model=gpt-realtime")
seen, texts, done = [], [], []
transport.on("*", lambda event: seen.append(event.type))
transport.on("output_text_delta", lambda event: texts.append(event.delta))
transport.on("audio_transcript_delta", lambda event: texts.append(event.delta))
transport.on("turn_done", lambda event: done.append(event.status))
await transport.connect(api_key=key)
transport.send_message("Say hello")
for _ in range(1000):
    if done:
        break
    await asyncio.sleep(0.01)
transport.close()
[done[0] if done else "not done", len(seen), list(dict.fromkeys(seen)), "".join(texts)]
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
        if any(out.iterdir()) and not (out / "manifest.json").exists():
            raise SystemExit(f"error: {out} is not empty and holds no snapshot: give a new or a snapshot folder")
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
                # .wasm: what it is, and the suffix servers send as application/wasm (compileStreaming).
                file = PurePosixPath(member).name + ".wasm"
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


MAKE_JS = """async ([indexURL, snapshotURL]) => {
    const { makeSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    const manifest = await (await fetch(snapshotURL + "manifest.json")).json();
    const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    const libraries = await Promise.all(manifest.libraries.map(async ({ path, file }) => ({
        path, module: await WebAssembly.compile(await bytes(snapshotURL + file)) })));
    const wheels = await Promise.all(manifest.wheels.map(async ({ file }) => ({
        name: file, bytes: await bytes(indexURL + file) })));
    const { loadPyodide } = await import(indexURL + "pyodide.mjs");
    const { default: createPyodideModule } = await import(indexURL + "pyodide.asm.mjs");
    const t = performance.now();
    const made = await makeSnapshot({ loadPyodide, createPyodideModule, indexURL, manifest, libraries, wheels });
    const make_ms = performance.now() - t;
    const link = Object.assign(document.createElement("a"), {
        href: URL.createObjectURL(new Blob([made.snapshot])), download: manifest.snapshot });
    document.body.append(link);
    link.click();  // the tool saves the download
    return { handles: made.handles, table_length: made.table_length, made_in: made.made_in,
             snapshot_bytes: made.snapshot.length, make_ms };
}"""

RESTORE_JS = """async ([indexURL, snapshotURL]) => {
    const t = performance.now();
    const { loadPyodideFromSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    const pyodide = await loadPyodideFromSnapshot({ indexURL, snapshotURL });
    const manifest = await (await fetch(snapshotURL + "manifest.json")).json();
    const check = pyodide.runPython(manifest.check);
    return { restore_ms: performance.now() - t, check };
}"""


def _blank_page(context: Any, url: str) -> Any:
    """A page at ``url`` (same origin as the files), served by Playwright: no file in the folders."""
    context.route(url, lambda route: route.fulfill(body="<!doctype html><title>snapshot</title>", content_type="text/html"))
    page = context.new_page()
    page.goto(url)
    return page


def make_in_chromium(chromium: Any, index_url: str, snapshot_url: str, out: Path) -> dict[str, Any]:
    """Make the snapshot of prepared OUT in a page, then restore it in a fresh context (empty cache).

    ``chromium`` is a Playwright browser; ``index_url`` serves DIST and ``snapshot_url`` serves OUT, both
    ending in "/" and on one origin. Returns the figures; raises ``RuntimeError`` if a step fails.
    """
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    context = chromium.new_context()
    try:
        page = _blank_page(context, f"{snapshot_url}__make__.html")
        with page.expect_download(timeout=120_000) as download:
            made: dict[str, Any] = page.evaluate(MAKE_JS, [index_url, snapshot_url])
        download.value.save_as(out / manifest["snapshot"])
    except Exception as error:  # Playwright's Error: a step failed in the page
        raise RuntimeError(f"making the snapshot in Chromium failed: {error}") from error
    finally:
        context.close()
    manifest.update({k: made[k] for k in ("handles", "table_length", "made_in", "snapshot_bytes")})
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    context = chromium.new_context()
    try:
        restored: dict[str, Any] = _blank_page(context, f"{snapshot_url}__restore__.html").evaluate(
            RESTORE_JS, [index_url, snapshot_url])
    except Exception as error:
        raise RuntimeError(f"the snapshot was made, but restoring it in Chromium failed: {error}") from error
    finally:
        context.close()
    return {"make_ms": made["make_ms"], "restore_ms": restored["restore_ms"], "snapshot_bytes": made["snapshot_bytes"],
            "check": restored["check"], "made_in": made["made_in"]}


def make_in_node(dist: Path, out: Path) -> dict[str, Any]:
    """Make the snapshot of prepared OUT under Node (for Node only) and check a restore there."""
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
    parser.add_argument("--in", dest="maker", choices=("chromium", "node"), default="chromium",
                        help="where to make it: a snapshot restores only in the engine that made it")
    args = parser.parse_args()
    dist, out = args.dist.resolve(), args.out.resolve()
    prepare(dist, out, args.package)
    try:
        if args.maker == "node":
            figures = make_in_node(dist, out)
        else:
            sys.path.insert(0, str(TOOLS.parent / "bench"))
            from _harness import browser, static_server

            with browser() as chromium, static_server({"/pyodide/": dist, "/snapshot/": out}) as base:
                figures = make_in_chromium(chromium, f"{base}/pyodide/", f"{base}/snapshot/", out)
    except RuntimeError as error:
        print(f"error: the snapshot failed:\n{error}", file=sys.stderr)
        return 1
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
