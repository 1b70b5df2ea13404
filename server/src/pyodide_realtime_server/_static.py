"""Static files on Starlette's ``StaticFiles``: its path checks (no ``..``, no symlink out of the root,
names too long for the file system are a 404), no dotfiles (``.env``, ``.git/``), plus what the demo
needs: MIME types Pyodide checks (``.mjs``, ``.wasm``, ``.whl``), ``Cache-Control: no-cache`` and
relative folder redirects.
"""

from __future__ import annotations

import mimetypes
import os
import re

from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# Pyodide loads .mjs as modules and .wasm with instantiateStreaming: both check the MIME type.
EXTRA_MIME_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".json": "application/json",
    ".map": "application/json",
    ".py": "text/x-python",
    ".toml": "text/plain",
    ".md": "text/markdown",
    ".data": "application/octet-stream",
}
for _suffix, _mime in EXTRA_MIME_TYPES.items():
    mimetypes.add_type(_mime, _suffix)


#: Cross-origin isolation: PyScript's synchronous ``window`` in a worker needs SharedArrayBuffer, which a
#: browser offers only to an isolated page. Only the pages that run Python in a PyScript worker get it:
#: what they load is same-origin, and a WebSocket (to here or to the API) is not affected.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
ISOLATED_PAGES = frozenset({"worker.html"})


class Site(StaticFiles):
    """A folder served as is, always revalidated (a rebuilt wheel must never come from a stale cache);
    the PyScript worker pages cross-origin isolated (:data:`ISOLATION_HEADERS`).

    ``follow_symlink`` stays Starlette's default (False): a link inside the root that points out of
    it is a 404.
    """

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        if os.path.basename(full_path) in ISOLATED_PAGES:
            response.headers.update(ISOLATION_HEADERS)
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") and part not in (".", "..") for part in re.split(r"[/\\]", path)):
            # Dotfiles and dot-folders (.env, .git, .venv) hold secrets and tooling, never the site.
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if isinstance(response, RedirectResponse):
            # Starlette redirects a folder to its URL with a slash, built from the Host header. A path
            # with exactly one leading slash cannot send the browser to another host: "GET ////evil"
            # must not answer "Location: //evil/".
            response.headers["Location"] = "/" + scope["path"].lstrip("/") + "/"
        return response
