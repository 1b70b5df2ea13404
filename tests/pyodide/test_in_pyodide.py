"""Pure-Python checks in real Pyodide (its Python 3.14, pydantic-core's wasm wheel, its event loop) without a
browser: pytest-pyodide's ``run_in_pyodide`` with its ``node`` runtime, from the offline dist
(pyproject.toml's ``--runtime=node --dist-dir=dist/pyodide``). What needs a page (WebSocket, Web Audio,
the DOM) is in tests/browser/."""

from __future__ import annotations

from typing import Any

from pytest_pyodide import run_in_pyodide


@run_in_pyodide(packages=["pyodide-realtime"])
def test_the_package_knows_it_is_in_pyodide_and_validates_with_pydantic(selenium: Any) -> None:
    import sys

    import pydantic
    import pytest

    from pyodide_realtime import SessionConfig
    from pyodide_realtime._platform import in_browser

    assert sys.platform == "emscripten" and sys.version_info[:2] == (3, 14) and in_browser()
    assert SessionConfig.model_validate({"instructions": "Be brief.", "temperature": 0.7}).temperature == 0.7
    with pytest.raises(pydantic.ValidationError, match="temperature"):
        SessionConfig.model_validate({"temperature": "hot"})


@run_in_pyodide(packages=["pyodide-realtime"])
async def test_a_scripted_transport_follows_its_script_on_pyodides_event_loop(selenium: Any) -> None:
    # tests/cpython/test_testing.py's first test, on Pyodide's own asyncio loop (the browser's, in a page).
    from pyodide_realtime.testing import RealtimeStep, ScriptedRealtimeTransport, spoken_reply

    seen: list[str] = []
    transport = ScriptedRealtimeTransport(
        [
            RealtimeStep("conversation.item.delete", emit=[{"type": "conversation.item.deleted", "item_id": "a"}]),
            RealtimeStep({"type": "session.update", "session": {"instructions": "Be brief."}}),
            RealtimeStep(
                lambda event: event.get("response", {}).get("instructions") == "Now.",
                emit=[lambda sent: spoken_reply(sent["response"]["instructions"], response_id="r1")],
            ),
        ]
    )
    transport.on("*", lambda event: seen.append(event.type))
    await transport.connect()  # no key: the scripted one, which has the form a page accepts
    transport.delete_item("a")
    transport.update_session_config({"instructions": "Be brief."})
    transport.request_response({"instructions": "Now."})
    await transport.idle()
    transport.assert_complete()
    assert seen[0] == "session.created" and seen[1] == "conversation.item.deleted" and seen[-1] == "response.done"
    mine = [e["type"] for e in transport.sent if e["type"] != "session.update" or "instructions" in e["session"]]
    assert mine == ["conversation.item.delete", "session.update", "response.create"]
    transport.close()
