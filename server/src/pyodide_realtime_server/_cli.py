"""``pyodide-realtime-server`` (or ``python -m pyodide_realtime_server``): serve the demo, the dist
and a simulated Realtime model.

With ``OPENAI_API_KEY`` in the environment (and no ``--offline``) the mint endpoint asks OpenAI for
real ephemeral keys; the regular key stays in this process. The mint endpoint's Origin check only
stops other sites' pages in visitors' browsers (any program can send any Origin), so with such a key
the server only listens on a loopback address unless ``--allow-remote-minting`` is given. Without a
key, a non-loopback address still exposes the simulated model (anyone may mint local keys) and the
served folders, so it needs ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

# What the server imports, by module -> distribution to install.
REQUIRED = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "websockets": "websockets",
    "openai": "openai",
    "webrtcvad": "webrtcvad-wheels",
    "pyodide_realtime": "pyodide-realtime",
}
DEFAULT_PACE = 4.0  # the same as _app.DEFAULT_PACE, without importing the app before the check
DEFAULT_KEY_TTL_S = 60.0
PROG = "pyodide-realtime-server"

logger = logging.getLogger("pyodide_realtime_server")


def missing_dependencies() -> list[str]:
    return [package for module, package in REQUIRED.items() if importlib.util.find_spec(module) is None]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name to listen on) only takes connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure(args: argparse.Namespace) -> str:
    """What anyone who can reach a non-loopback ``--host`` gets, in one clause."""
    served = "every file under the web root" + (" and the mounts" if args.mount else "")
    parts = [f"anyone who can reach it could mint keys, open sessions with the simulated model and read {served}"]
    if args.test_endpoints:
        parts.append("read and reset what every client sent (--test-endpoints)")
    if args.accept_any_key:
        parts.append("connect without a minted key (--accept-any-key)")
    return ", ".join(parts)


def _mint_key(args: argparse.Namespace) -> str | None:
    """The regular key the mint endpoint would spend, if any."""
    return None if args.offline else os.environ.get("OPENAI_API_KEY") or None


def _mount(text: str) -> tuple[str, Path]:
    prefix, sep, folder = text.partition("=")
    if not sep or not prefix.startswith("/") or not folder:
        raise argparse.ArgumentTypeError(f"expected /PREFIX=FOLDER, got {text!r}")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder!r} is not a folder")
    return prefix, Path(folder)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--web-root", type=Path, default=None, help="static root (default: ./web if it exists)")
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
    parser.add_argument(
        "--allow-remote-minting",
        action="store_true",
        help="with OPENAI_API_KEY, listen on a non-loopback --host anyway: anyone who can reach it can mint real keys billed to you",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback --host: anyone who can reach it can mint keys, talk to the simulated model and read the served folders",
    )
    parser.add_argument("--accept-any-key", action="store_true", help="also accept any 'sk-' key on the WebSocket (tests only)")
    parser.add_argument("--speech", choices=("auto", "espeak", "tones"), default="auto", help="voice of the simulated model")
    parser.add_argument("--allow-origin", action="append", default=[], help="another page origin allowed to mint keys")
    parser.add_argument(
        "--test-endpoints",
        action="store_true",
        help="keep a (bounded) log of what clients sent and serve it at GET /_test/state, with POST /_test/reset (same origin only; for tests)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    from ._app import RealtimeServer

    web_root = args.web_root
    if web_root is None and Path("web").is_dir():
        web_root = Path("web")
    if web_root is None:
        logger.warning("no web root (no --web-root, no ./web): only the API and mounts are served")
    api_key = _mint_key(args)
    if not is_loopback(args.host):
        logger.warning("listening on %s, not a loopback address: %s", args.host, exposure(args))
    if api_key is not None and not is_loopback(args.host):
        logger.warning("minting real OpenAI keys for anyone who can reach %s:%s (--allow-remote-minting)", args.host, args.port)
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
        test_endpoints=args.test_endpoints,
        keep_log=args.test_endpoints,  # what clients sent stays in memory only for tests
    )
    # SIGTERM stops the server as Ctrl-C does (asyncio.run cancels on SIGINT): through ``async with``,
    # which stops the speech worker too. Left to its default, SIGTERM would end this process at once.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    async with server:
        print(f"Serving on {server.url}", flush=True)
        await server.wait_stopped()


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if _mint_key(args) is not None and not is_loopback(args.host) and not args.allow_remote_minting:
        # The Origin check is no access control outside a browser: anyone on the network could
        # mint real keys billed to the operator.
        print(
            f"{PROG}: refusing to serve on non-loopback host {args.host} while OPENAI_API_KEY is set: anyone who can "
            "reach it could mint real OpenAI keys billed to you; use --offline, a loopback --host, "
            "or --allow-remote-minting to do it anyway",
            file=sys.stderr,
        )
        return 2
    if not is_loopback(args.host) and not (args.allow_remote or args.allow_remote_minting):
        print(
            f"{PROG}: refusing to listen on non-loopback host {args.host}: {exposure(args)}; use a loopback --host "
            "(the default, 127.0.0.1), or --allow-remote to expose it anyway",
            file=sys.stderr,
        )
        return 2
    missing = missing_dependencies()
    if missing:
        print(
            f"{PROG}: missing {', '.join(missing)}: pip install {' '.join(missing)} "
            "(in a checkout of pyodide-realtime: pip install -e . -e server, as ./build.sh setup does)",
            file=sys.stderr,
        )
        return 2
    from ._errors import RealtimeServerError

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    try:
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            asyncio.run(_serve(args))
    except RealtimeServerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. an address that is not this machine's
        print(f"{PROG}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
