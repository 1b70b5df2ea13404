"""Just enough HTTP/1.1 for a local dev server: requests with bodies, keep-alive, static files.

websockets' own HTTP parser refuses request bodies (the mint endpoint needs one), so plain HTTP is
handled here and only WebSocket upgrades go to websockets' sans-I/O protocol (see ``_websocket``).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import mimetypes
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
FILE_CHUNK_BYTES = 256 * 1024

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".py": "text/x-python; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".wav": "audio/wav",
    ".data": "application/octet-stream",
}

REASONS = {
    200: "OK",
    201: "Created",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    raw_head: bytes = field(repr=False)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def is_websocket_upgrade(self) -> bool:
        return (self.header("Upgrade") or "").lower() == "websocket"

    @property
    def keep_alive(self) -> bool:
        connection = (self.header("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on a connection, or None at a clean end of the stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, "unsupported HTTP version")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        headers.append((name, value.strip()))
    request = HttpRequest(method, target, version, headers, head)
    if request.header("Transfer-Encoding"):
        raise BadRequest(400, "chunked request bodies are not supported; send Content-Length")
    length_text = request.header("Content-Length") or "0"
    if not length_text.isdigit():
        raise BadRequest(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "request body too large")
    if length:
        request.body = await reader.readexactly(length)
    return request


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # streamed instead of ``body`` when set
    file_size: int = 0

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, *, code: str | None = None, type_: str = "invalid_request_error") -> HttpResponse:
        return cls.json(status, {"error": {"type": type_, "code": code, "message": message, "param": None}})

    def head_bytes(self, keep_alive: bool) -> bytes:
        headers = {
            "Date": email.utils.formatdate(usegmt=True),
            "Server": "pyodide-realtime-local",
            "Cache-Control": "no-cache",
            "Content-Length": str(self.file_size if self.file is not None else len(self.body)),
            "Connection": "keep-alive" if keep_alive else "close",
            **self.headers,
        }
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_response(
    writer: asyncio.StreamWriter, response: HttpResponse, *, keep_alive: bool, head_only: bool = False
) -> None:
    writer.write(response.head_bytes(keep_alive))
    if head_only:
        pass
    elif response.file is not None:
        with response.file.open("rb") as handle:
            while chunk := handle.read(FILE_CHUNK_BYTES):
                writer.write(chunk)
                await writer.drain()
    else:
        writer.write(response.body)
    await writer.drain()


def mime_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in MIME_TYPES:
        return MIME_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def _clean_segments(url_path: str) -> list[str] | None:
    """The path's segments, decoded, or None if any could step outside the folder it names."""
    segments = []
    for raw in url_path.split("/"):
        segment = urllib.parse.unquote(raw)
        if segment in ("", "."):
            continue
        if segment == ".." or "/" in segment or "\\" in segment or "\x00" in segment or ":" in segment:
            return None
        segments.append(segment)
    return segments


class StaticSite:
    """A root folder plus mounts (URL prefix -> folder); the longest matching prefix wins.

    Safety comes from building the file path out of plain segments only (no ``..``, no separators
    hidden in percent-escapes), not from resolving symlinks, so a dist folder may link its wheels.
    """

    def __init__(self, root: Path | None, mounts: Mapping[str, Path] | None = None) -> None:
        self.root = root
        self.mounts = {"/" + prefix.strip("/"): Path(folder) for prefix, folder in (mounts or {}).items()}

    def _locate(self, url_path: str) -> tuple[Path, list[str]] | None:
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if url_path == prefix or url_path.startswith(prefix + "/"):
                return self.mounts[prefix], url_path[len(prefix) :].split("/")
        return (self.root, url_path.split("/")) if self.root is not None else None

    def respond(self, url_path: str) -> HttpResponse:
        located = self._locate(url_path)
        segments = _clean_segments(url_path) if located else None
        if located is None or segments is None:
            return HttpResponse.error(404, f"Not found: {url_path}", code="not_found")
        folder, rest = located
        clean_rest = _clean_segments("/".join(rest)) or []
        target = folder.joinpath(*clean_rest)
        if target.is_dir():
            if not url_path.endswith("/"):
                # Relative URLs in an index page need the trailing slash.
                return HttpResponse(301, headers={"Location": url_path + "/"})
            target = target / "index.html"
        if not target.is_file():
            return HttpResponse.error(404, f"Not found: {url_path}", code="not_found")
        return HttpResponse(200, headers={"Content-Type": mime_type(target)}, file=target, file_size=target.stat().st_size)
