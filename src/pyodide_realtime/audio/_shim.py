"""Loads ``audio_shim.js`` from the package into a Blob URL, once per interpreter, and finds the page.

The same URL serves ``audioWorklet.addModule`` (the processors) and ``import()`` (the helpers), so
the page needs no extra file and the wheel stays the only thing to ship. The Blob URL lives as long
as the page (one small blob; revoking it would break contexts created later).

On a page's main thread the player and the microphone use Web Audio directly. In a Web Worker
(PyScript's ``<script type="py" worker>``, or a plain Pyodide worker) there is no Web Audio: the
worker sends the shim to its page, whose helper (``HOST_SNIPPET``) runs the worklets there and hands
the worker a ``MessagePort`` straight to each worklet. A PyScript worker installs that helper on the
page itself, through PyScript's ``window`` (a cross-origin isolated page); a plain worker's page adds it.
"""

from __future__ import annotations

import asyncio
import sys
from importlib import resources
from typing import Any, Literal

from .._platform import in_browser
from ..errors import UnsupportedError

__all__ = ["in_browser", "in_worker", "require_web_audio", "load_shim", "page_link", "page_url", "js_object", "HOST_SNIPPET"]

SHIM_RESOURCE = "audio_shim.js"
#: How long a worker waits for its page to answer the first time (a page without the helper never does).
HANDSHAKE_TIMEOUT_S = 5.0
#: What a page adds so that its workers get audio (``worker``: the Worker; PyScript: see the README).
HOST_SNIPPET = """worker.addEventListener("message", async (e) => {
  if (e.data?.type !== "pyodide-realtime-audio") return;
  const url = URL.createObjectURL(new Blob([e.data.source], { type: "text/javascript" }));
  (await import(url)).serveWorker(e.data.port, url);
});"""
#: The same, installed by a PyScript worker on its own page (once per worker).
_PYSCRIPT_HOST = (
    "if (!element || !element.xworker || element.xworker.pyodideRealtimeAudio) return false;\n"
    "const worker = element.xworker;\nworker.pyodideRealtimeAudio = true;\n" + HOST_SNIPPET + "\nreturn true;"
)

_module: Any = None
_url: str | None = None
_source: str | None = None
_link: Any = None


def in_worker() -> bool:
    """True in a Web Worker under Pyodide (no ``window``, no ``document`` of its own)."""
    if not in_browser():
        return False
    import js

    return not hasattr(js, "window") and hasattr(js, "WorkerGlobalScope")


def require_web_audio(what: str) -> Literal["page", "worker"]:
    """Where ``what`` gets its audio: the page's own Web Audio, or the page's through a worker's bridge.

    UnsupportedError outside a browser, and on an insecure page (no AudioWorklet).
    """
    if not in_browser():
        raise UnsupportedError(
            f"{what} needs a web browser: run it under Pyodide or PyScript on a web page "
            f"(this is CPython on {sys.platform}; on a server, send and receive audio bytes yourself)."
        )
    if in_worker():
        return "worker"
    import js

    if not hasattr(js, "AudioContext"):
        raise UnsupportedError(f"{what} needs Web Audio, which this browser does not offer (no AudioContext).")
    if not hasattr(js, "AudioWorkletNode"):
        raise UnsupportedError(
            f"{what} needs AudioWorklet, which browsers only offer to secure pages: serve the page over "
            "https:// or from http://localhost / http://127.0.0.1."
        )
    return "page"


def js_object(values: dict[str, Any]) -> Any:
    """A plain JS object (not a Map) from a dict."""
    import js
    from pyodide.ffi import to_js

    return to_js(values, dict_converter=js.Object.fromEntries)


async def load_shim() -> tuple[Any, str]:
    """The shim's exports (a JS module namespace) and its Blob URL, loaded on first use."""
    global _module, _url, _source
    if _module is None or _url is None:
        import js
        from pyodide.code import run_js
        from pyodide.ffi import to_js

        source = resources.files("pyodide_realtime").joinpath(SHIM_RESOURCE).read_text(encoding="utf-8")
        blob = js.Blob.new(to_js([source]), js_object({"type": "text/javascript"}))
        url = str(js.URL.createObjectURL(blob))
        importer = run_js("(url) => import(url)")
        _module = await importer(url)
        _url, _source = url, source
    return _module, _url


async def page_link(what: str) -> Any:
    """In a worker: the link to the page that hosts its audio (a JS ``PageLink``), made once."""
    global _link
    if _link is None:
        shim, _ = await load_shim()
        _host_from_pyscript_worker()
        try:
            _link = await asyncio.wait_for(asyncio.ensure_future(shim.connectToPage(_source)), HANDSHAKE_TIMEOUT_S)
        except asyncio.TimeoutError:
            shim.forgetPage()  # the next attempt asks again
            raise UnsupportedError(
                f"{what} runs in a Web Worker, and Web Audio only exists on the page: the page must host the "
                f"worker's audio, and it did not answer within {HANDSHAKE_TIMEOUT_S:g} s. Add this to the page, "
                "where `worker` is the Worker (PyScript: the `xworker` given to hooks.main.onWorker):\n"
                + HOST_SNIPPET
            ) from None
    return _link


def _pyscript_page() -> tuple[Any, Any] | None:
    """In a PyScript worker: the page's ``window`` and this worker's ``<script>`` element (proxies).

    None elsewhere, and where PyScript's ``window`` does not work (a page that is not cross-origin
    isolated: PyScript's ``NotSupported`` raises on use).
    """
    try:
        import polyscript  # type: ignore[import-not-found]
        from pyscript import window  # type: ignore[import-not-found]

        window.location  # noqa: B018 (raises if `window` is PyScript's NotSupported stand-in)
        return window, polyscript.currentScript
    except Exception:
        return None


def _host_from_pyscript_worker() -> bool:
    """In a PyScript worker whose ``window`` works, install the page's helper for this worker."""
    page = _pyscript_page()
    if page is None:
        return False
    window, element = page
    try:
        return bool(window.Function("element", _PYSCRIPT_HOST)(element))
    except Exception:  # a page that refuses it (a CSP without 'unsafe-eval'): its own helper may serve
        return False


#: Base URLs that cannot resolve a relative one: a worker started from a Blob (PyScript's are) or data.
_OPAQUE_SCHEMES = ("blob:", "data:")


def page_url(url: str = "") -> str:
    """``url`` resolved against the page's address, also in a Web Worker, whose own base is often a
    ``blob:`` URL (PyScript's workers) against which ``pyfetch("./x")`` fails with "Failed to parse URL".

    The page's address comes from: the page itself (main thread); the page that hosts the worker's
    audio, once a player or microphone was made; PyScript's ``window`` (a worker of a cross-origin
    isolated page); the worker's own script URL if it is not a Blob. UnsupportedError if none is known.
    """
    from urllib.parse import urljoin

    base = _page_base()
    if base is None:
        raise UnsupportedError(
            f"cannot resolve {url!r} against the page from this worker (its own address is a blob: URL): pass an "
            "absolute URL, or create an AudioPlayer/Microphone first (the page tells its address), or serve the "
            "page cross-origin isolated so that PyScript's `window` works in the worker"
        )
    return urljoin(base, url)


def _page_base() -> str | None:
    if not in_browser():
        return None
    import js

    if hasattr(js, "window") and hasattr(js, "location"):
        return str(js.location.href)
    if _link is not None and _link.pageUrl is not None:
        return str(_link.pageUrl)
    page = _pyscript_page()
    if page is not None:
        return str(page[0].location.href)
    own = str(js.location.href) if hasattr(js, "location") else ""
    return own if own and not own.startswith(_OPAQUE_SCHEMES) else None
