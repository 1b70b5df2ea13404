"""Loads ``audio_shim.js`` from the package into a Blob URL, once per interpreter.

The same URL serves ``audioWorklet.addModule`` (the processors) and ``import()`` (the main-thread
helpers), so the page needs no extra file and the wheel stays the only thing to ship. The Blob URL
lives as long as the page (one small blob; revoking it would break contexts created later).
"""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

from .._platform import in_browser
from ..errors import UnsupportedError

__all__ = ["in_browser", "require_web_audio", "load_shim", "js_object"]

SHIM_RESOURCE = "audio_shim.js"

_module: Any = None
_url: str | None = None


def require_web_audio(what: str) -> None:
    """Raise UnsupportedError unless this is a page's main thread with Web Audio and AudioWorklet."""
    if not in_browser():
        raise UnsupportedError(
            f"{what} needs a web browser: run it under Pyodide or PyScript on a web page "
            f"(this is CPython on {sys.platform}; on a server, send and receive audio bytes yourself)."
        )
    import js

    if not hasattr(js, "window") or not hasattr(js, "AudioContext"):
        raise UnsupportedError(
            f"{what} needs the page's main thread: Web Audio and the microphone do not exist in a Web "
            "Worker. Run this code on the main thread (PyScript: drop the `worker` attribute of the "
            "<script type=\"py\"> tag), or keep the transport in the worker and play audio from the page."
        )
    if not hasattr(js, "AudioWorkletNode"):
        raise UnsupportedError(
            f"{what} needs AudioWorklet, which browsers only offer to secure pages: serve the page over "
            "https:// or from http://localhost / http://127.0.0.1."
        )


def js_object(values: dict[str, Any]) -> Any:
    """A plain JS object (not a Map) from a dict."""
    import js
    from pyodide.ffi import to_js

    return to_js(values, dict_converter=js.Object.fromEntries)


async def load_shim() -> tuple[Any, str]:
    """The shim's exports (a JS module namespace) and its Blob URL, loaded on first use."""
    global _module, _url
    if _module is None or _url is None:
        import js
        from pyodide.code import run_js
        from pyodide.ffi import to_js

        source = resources.files("pyodide_realtime").joinpath(SHIM_RESOURCE).read_text(encoding="utf-8")
        blob = js.Blob.new(to_js([source]), js_object({"type": "text/javascript"}))
        url = str(js.URL.createObjectURL(blob))
        importer = run_js("(url) => import(url)")
        _module = await importer(url)
        _url = url
    return _module, _url
