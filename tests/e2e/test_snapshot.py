"""The memory-snapshot recipe of docs/snapshots.md, as a page would use it: made in Chromium by
tools/make_snapshot.py, restored in a fresh context (empty cache) by tools/snapshot_loader.mjs, then
a real conversation with the local Realtime server. And the loader's refusals, which the page's
fallback to a normal start relies on: they must be errors that say why, never a broken interpreter.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from make_snapshot import CHECK, CONVERSE, make_in_chromium, prepare  # tools/, on the path (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist" / "pyodide"

RESTORE_AND_TALK_JS = """async ([indexURL, snapshotURL, wsURL, key, check, converse]) => {
    const { loadPyodideFromSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    const pyodide = await loadPyodideFromSnapshot({ indexURL, snapshotURL });
    const imported = pyodide.runPython("import sys; 'pyodide_realtime.transport' in sys.modules");
    const checked = pyodide.runPython(check);
    pyodide.globals.set("ws_url", wsURL);
    pyodide.globals.set("key", key);
    const talk = await pyodide.runPythonAsync(converse);
    return { imported, checked, talk: talk.toJs() };
}"""

RESTORE_JS = """async ([indexURL, snapshotURL]) => {
    const { loadPyodideFromSnapshot } = await import(snapshotURL + "snapshot_loader.mjs");
    try {
        await loadPyodideFromSnapshot({ indexURL, snapshotURL });
        return "restored";
    } catch (error) {
        return String(error.message || error);
    }
}"""


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (DIST / "pyodide-lock.json").is_file():
        raise RuntimeError(f"{DIST} is missing: run ./build.sh dist first")
    out = tmp_path_factory.mktemp("snapshot")
    prepare(DIST, out, "pyodide-realtime")
    return out


@pytest.fixture(scope="module")
def snapshot_server(snapshot_dir: Path) -> Iterator[Any]:
    """The local Realtime server with the dist at /pyodide and the snapshot folder at /snapshot."""
    from pyodide_realtime_server import start_in_thread

    server = start_in_thread(web_root=snapshot_dir, mounts={"/pyodide": DIST, "/snapshot": snapshot_dir}, pace=8.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    """One Chromium for the module; each restore gets a fresh context (an empty cache: a first visit)."""
    from conftest import launch

    browser = launch(playwright)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def made(chromium: Any, snapshot_server: Any, snapshot_dir: Path) -> dict[str, Any]:
    """The snapshot, made in Chromium (and checked once restored, by make_in_chromium itself)."""
    base = snapshot_server.url.rstrip("/")
    return make_in_chromium(chromium, f"{base}/pyodide/", f"{base}/snapshot/", snapshot_dir)


def restore(chromium: Any, server: Any, script: str, *args: str) -> Any:
    context = chromium.new_context()
    try:
        page = context.new_page()
        base = server.url.rstrip("/")
        page.goto(f"{base}/snapshot/manifest.json")  # any page of the origin: the loader is fetched by URL
        return page.evaluate(script, [f"{base}/pyodide/", f"{base}/snapshot/", *args])
    finally:
        context.close()


def test_a_restored_snapshot_has_the_transport_imported_and_holds_a_conversation(
    chromium: Any, snapshot_server: Any, made: dict[str, Any]
) -> None:
    assert "Chrome/" in made["made_in"] and made["snapshot_bytes"] > 10_000_000
    result = restore(chromium, snapshot_server, RESTORE_AND_TALK_JS, snapshot_server.ws_url,
                     snapshot_server.mint_key(), CHECK, CONVERSE)
    assert result["imported"] is True  # nothing left to import: that is the whole gain
    assert result["checked"] == made["check"]
    status, count, types, text = result["talk"]
    assert status == "completed" and "response.done" in types and count > 10 and text


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda m: m.update(table_length=m["table_length"] + 1), "does not fit this engine"),
        (lambda m: next(w for w in m["wheels"] if w["on_path"]).update(sha256="0" * 64),
         "is not the wheel this snapshot was made with"),
    ],
    ids=["another engine's function table", "other wheels"],
)
def test_the_loader_refuses_a_snapshot_that_does_not_fit_and_says_why(
    chromium: Any, snapshot_server: Any, snapshot_dir: Path, made: dict[str, Any], change: Any, says: str
) -> None:
    manifest_path = snapshot_dir / "manifest.json"
    kept = snapshot_dir.parent / "manifest.kept.json"
    shutil.copy(manifest_path, kept)
    try:
        manifest = json.loads(manifest_path.read_text())
        change(manifest)
        manifest_path.write_text(json.dumps(manifest))
        answer = restore(chromium, snapshot_server, RESTORE_JS)
    finally:
        shutil.copy(kept, manifest_path)
    assert answer != "restored" and says in answer, answer
