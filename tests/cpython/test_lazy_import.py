"""The package's top level is lazy (PEP 562): a page pays at start only for what it uses.

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pyodide_realtime

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "src" / "pyodide_realtime" / "__init__.py"
#: What the transport never needs at import: loaded when first used.
LOADED_WHEN_USED = ("pyodide_realtime.audio", "pyodide_realtime.server", "pyodide_realtime.session", "pyodide_realtime_server")


def run_fresh(code: str) -> str:
    """What a fresh interpreter prints running ``code`` (with only our sources on its path)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    return result.stdout.strip()


def modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    loaded: list[str] = json.loads(run_fresh(f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"))
    return loaded


def test_importing_the_package_loads_neither_pydantic_nor_our_modules() -> None:
    loaded = modules_after("import pyodide_realtime")
    ours = {m for m in loaded if m.startswith("pyodide_realtime")}
    assert ours == {"pyodide_realtime", "pyodide_realtime._version"}
    assert "pydantic" not in loaded


def test_the_transport_loads_without_audio_session_or_server() -> None:
    loaded = modules_after("from pyodide_realtime import OpenAIRealtimeWebSocket, SessionConfig, RealtimeError")
    assert "pyodide_realtime.transport" in loaded and "pydantic" in loaded
    assert [m for m in loaded if m.startswith(LOADED_WHEN_USED)] == []


def test_the_event_validators_are_built_at_the_first_parse_not_at_import() -> None:
    probe = """
from pyodide_realtime import OpenAIRealtimeWebSocket
from pyodide_realtime import events
models = [m for m in vars(events).values() if isinstance(m, type) and issubclass(m, events.ServerEventBase)]
print(len(models), events._validators is None, sum(m.__pydantic_complete__ for m in models))
event = events.parse_server_event('{"type": "response.output_audio.delta", "delta": "AAA=", "item_id": "i"}')
print(type(event).__name__, event.delta, events._validators is not None)
"""
    before, after = run_fresh(probe).splitlines()
    count, unbuilt, complete = before.split()
    assert int(count) > 30 and unbuilt == "True" and complete == "0"
    assert after == "ResponseAudioDelta b'\\x00\\x00' True"


def test_audio_loads_when_one_of_its_names_is_used() -> None:
    loaded = modules_after("import pyodide_realtime\npyodide_realtime.start_voice")
    assert "pyodide_realtime.audio.voice" in loaded


def test_every_public_name_resolves_to_the_object_of_its_module() -> None:
    from pyodide_realtime import audio, transport

    for name in pyodide_realtime.__all__:
        assert getattr(pyodide_realtime, name) is not None, name
    assert pyodide_realtime.OpenAIRealtimeWebSocket is transport.OpenAIRealtimeWebSocket
    assert pyodide_realtime.start_voice is audio.start_voice
    assert set(dir(pyodide_realtime)) >= set(pyodide_realtime.__all__)


def test_submodules_are_reachable_as_attributes() -> None:
    code = "import pyodide_realtime\nassert pyodide_realtime.events.parse_server_event\nassert pyodide_realtime.audio.AudioPlayer"
    assert "pyodide_realtime.audio" in modules_after(code)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'OpenAIRealtimeWebsocket'"):
        pyodide_realtime.OpenAIRealtimeWebsocket  # noqa: B018
    with pytest.raises(ImportError):
        exec("from pyodide_realtime import nothing_here", {})


def test_what_type_checkers_see_matches_what_loads() -> None:
    # The names imported under `if TYPE_CHECKING:` (for mypy and IDEs) are exactly the lazy table's,
    # each from the same module, and exactly __all__ (with __version__, imported eagerly).
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed = {
        alias.name: "." * node.level + (node.module or "")
        for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    exports = pyodide_realtime._EXPORTS
    assert typed == exports
    assert set(pyodide_realtime.__all__) == {*exports, "__version__"}
