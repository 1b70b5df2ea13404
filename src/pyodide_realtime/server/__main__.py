"""``python -m pyodide_realtime.server``: serve the demo, the dist and a simulated Realtime model.

With ``OPENAI_API_KEY`` in the environment (and no ``--offline``) the mint endpoint asks OpenAI for
real ephemeral keys; the regular key stays in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._app import DEFAULT_PACE, RealtimeServer
from ._keys import DEFAULT_KEY_TTL_S

logger = logging.getLogger("pyodide_realtime.server")

# src/pyodide_realtime/server/__main__.py -> the repository root, when run from a checkout.
REPO_WEB = Path(__file__).resolve().parents[3] / "web"


def _mount(text: str) -> tuple[str, Path]:
    prefix, sep, folder = text.partition("=")
    if not sep or not prefix.startswith("/") or not folder:
        raise argparse.ArgumentTypeError(f"expected /PREFIX=FOLDER, got {text!r}")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder!r} is not a folder")
    return prefix, Path(folder)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pyodide_realtime.server", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--web-root", type=Path, default=None, help="static root (default: ./web, else the checkout's web/)")
    parser.add_argument(
        "--mount",
        type=_mount,
        action="append",
        default=[],
        metavar="/PREFIX=FOLDER",
        help="serve FOLDER under /PREFIX, e.g. --mount /dist=dist/pyodide (repeatable)",
    )
    parser.add_argument(
        "--pace", type=float, default=DEFAULT_PACE, help="model audio speed vs real time (default: 4; 0 = no waiting)"
    )
    parser.add_argument(
        "--key-ttl", type=float, default=DEFAULT_KEY_TTL_S, help="ephemeral key lifetime in seconds (default: 60)"
    )
    parser.add_argument("--offline", action="store_true", help="mint local keys even when OPENAI_API_KEY is set")
    parser.add_argument("--accept-any-key", action="store_true", help="also accept any 'sk-' key on the WebSocket (tests only)")
    parser.add_argument("--speech", choices=("auto", "espeak", "tones"), default="auto", help="voice of the simulated model")
    parser.add_argument("--allow-origin", action="append", default=[], help="another page origin allowed to mint keys")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    return parser.parse_args(argv)


def _web_root(given: Path | None) -> Path | None:
    if given is not None:
        return given
    for candidate in (Path("web"), REPO_WEB):
        if candidate.is_dir():
            return candidate
    return None


async def _serve(args: argparse.Namespace) -> None:
    web_root = _web_root(args.web_root)
    if web_root is None:
        logger.warning("no web root found (tried ./web and %s): only the API and mounts are served", REPO_WEB)
    api_key = None if args.offline else os.environ.get("OPENAI_API_KEY") or None
    server = RealtimeServer(
        host=args.host,
        port=args.port,
        web_root=web_root,
        mounts=dict(args.mount),
        pace=args.pace,
        key_ttl_s=args.key_ttl,
        accept_any_key=args.accept_any_key,
        speech=args.speech,
        api_key=api_key,
        allowed_origins=args.allow_origin,
    )
    async with server:
        print(f"Serving on {server.url}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
