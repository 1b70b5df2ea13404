"""``pyodide_realtime.testing`` on its own: the script is followed, reported, and never needs a clock."""

from __future__ import annotations

import pytest

from pyodide_realtime import ConfigurationError, InvalidStateError
from pyodide_realtime.testing import (
    RealtimeStep,
    ScriptedRealtimeTransport,
    UnconsumedSteps,
    UnexpectedSend,
    function_call,
    spoken_reply,
)


@pytest.mark.asyncio
async def test_a_step_matches_by_type_by_contents_or_by_predicate_and_emits_in_order() -> None:
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
    await transport.connect()
    transport.delete_item("a")
    transport.update_session_config({"instructions": "Be brief."})
    transport.request_response({"instructions": "Now."})
    await transport.idle()
    transport.assert_complete()
    assert seen[0] == "session.created" and seen[1] == "conversation.item.deleted" and seen[-1] == "response.done"
    mine = [e["type"] for e in transport.sent if e["type"] != "session.update" or "instructions" in e["session"]]
    assert mine == ["conversation.item.delete", "session.update", "response.create"]
    transport.close()


@pytest.mark.asyncio
async def test_strict_scripts_report_what_did_not_match_and_what_was_left() -> None:
    transport = ScriptedRealtimeTransport([RealtimeStep("response.create")], strict=True)
    await transport.connect()  # its session.update is not in the script
    with pytest.raises(UnexpectedSend, match="session.update"):
        transport.assert_complete()
    lenient = ScriptedRealtimeTransport([RealtimeStep("response.cancel")])
    await lenient.connect()
    with pytest.raises(UnconsumedSteps, match="response.cancel"):
        lenient.assert_complete()
    with pytest.raises(TypeError, match="expect"):
        RealtimeStep(42)  # type: ignore[arg-type]
    transport.close()
    lenient.close()


@pytest.mark.asyncio
async def test_emit_delivers_server_events_and_drop_loses_the_connection() -> None:
    transport = ScriptedRealtimeTransport()
    with pytest.raises(RuntimeError, match="connect"):
        transport.emit({"type": "response.done"})
    await transport.connect()
    calls: list[str] = []
    transport.on("function_call", lambda call: calls.append(call.name))
    transport.emit(*function_call("lookup", {"q": 1}))
    assert calls == ["lookup"]  # delivered at once: emit() is called outside the transport
    transport.drop()
    assert transport.status == "disconnected"
    with pytest.raises(InvalidStateError):
        transport.send_message("hi")
    with pytest.raises(ConfigurationError):  # the real transport's checks still apply
        await transport.connect(url="ws://example.com/insecure")
