"""The transport's client-event methods, through a real socket, checked against the official SDK's types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from openai.types.realtime.realtime_client_event import RealtimeClientEvent
from pydantic import TypeAdapter

from pyodide_realtime import ConfigurationError, InvalidStateError, OpenAIRealtimeWebSocket
from pyodide_realtime._client_events import MAX_SENT_MESSAGE_BYTES
from scripted_server import LoopbackPeer, until

CLIENT_EVENT = TypeAdapter(RealtimeClientEvent)


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[LoopbackPeer]:
    async with LoopbackPeer() as loopback:
        yield loopback



CALLS: list[tuple[str, tuple[Any, ...], list[dict[str, Any]]]] = [
    ("commit_audio", (), [{"type": "input_audio_buffer.commit"}]),
    ("clear_audio", (), [{"type": "input_audio_buffer.clear"}]),
    ("delete_item", ("item_1",), [{"type": "conversation.item.delete", "item_id": "item_1"}]),
    ("retrieve_item", ("item_2",), [{"type": "conversation.item.retrieve", "item_id": "item_2"}]),
    ("truncate_item", ("item_3", 0, 1500),
     [{"type": "conversation.item.truncate", "item_id": "item_3", "content_index": 0, "audio_end_ms": 1500}]),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("method, args, expected", CALLS, ids=[c[0] for c in CALLS])
async def test_each_method_sends_its_event_as_the_sdk_types_it(
    peer: LoopbackPeer, method: str, args: tuple[Any, ...], expected: list[dict[str, Any]]
) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    await transport.connect()
    await until(lambda: len(peer.received) >= 2)  # session.update and the tracing update
    before = len(peer.received)
    getattr(transport, method)(*args)
    await until(lambda: len(peer.received) >= before + len(expected))
    sent = peer.received[before:]
    assert sent == expected
    for event in sent:
        typed = CLIENT_EVENT.validate_python(event)
        assert typed.type == event["type"] and not (typed.model_extra or {}), event
    transport.close()


@pytest.mark.asyncio
async def test_send_mcp_response_answers_the_approval_request(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    await transport.connect()
    await until(lambda: len(peer.received) >= 2)
    before = len(peer.received)
    transport.send_mcp_response("mcpr_1", True)
    await until(lambda: len(peer.received) > before)
    create = peer.received[before]
    assert create["type"] == "conversation.item.create"
    assert create["item"]["type"] == "mcp_approval_response" and create["item"]["approval_request_id"] == "mcpr_1"
    assert create["item"]["approve"] is True
    # The SDK's schema makes the item's ``id`` required: the event is valid as sent, and each answer
    # has its own id (within the API's 32 characters).
    typed = CLIENT_EVENT.validate_python(create)
    assert not (typed.model_extra or {})
    transport.send_mcp_response("mcpr_2", False, "not now")
    await until(lambda: len(peer.received) > before + 1)
    second = peer.received[before + 1]["item"]
    assert second["id"] != create["item"]["id"] and len(second["id"]) <= 32 and second["reason"] == "not now"
    transport.close()


@pytest.mark.asyncio
async def test_cancel_response_only_when_a_response_runs(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    transport.cancel_response()  # disconnected: nothing, no error
    await transport.connect()
    await until(lambda: len(peer.received) >= 2)
    transport.cancel_response()  # nothing running: nothing sent
    transport.send_event({"type": "test.ping"})  # a marker: what was sent before it arrived before it
    await until(lambda: peer.types()[-1:] == ["test.ping"])
    assert "response.cancel" not in peer.types()
    transport.close()


@pytest.mark.asyncio
async def test_methods_refuse_bad_input_and_a_disconnected_transport_without_sending(peer: LoopbackPeer) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    for method, args, _ in CALLS:
        with pytest.raises(InvalidStateError, match="connect"):
            getattr(transport, method)(*args)
    await transport.connect()
    await until(lambda: len(peer.received) >= 2)
    before = len(peer.received)
    for call in (lambda: transport.delete_item(""), lambda: transport.retrieve_item(42),  # type: ignore[arg-type]
                 lambda: transport.truncate_item("i", -1, 5), lambda: transport.truncate_item("i", 0, 1.5),  # type: ignore[arg-type]
                 lambda: transport.send_mcp_response("r", "yes")):  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            call()
    transport.send_event({"type": "test.ping"})  # a marker: what was sent before it arrived before it
    await until(lambda: peer.types()[-1:] == ["test.ping"])
    assert len(peer.received) == before + 1 and transport.status == "connected"
    transport.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("char", ["x", "é"], ids=["ascii", "two-byte"])
async def test_a_function_call_output_over_the_frame_bound_is_refused_before_sending(peer: LoopbackPeer, char: str) -> None:
    transport = OpenAIRealtimeWebSocket(url=peer.url(), api_key="sk-x")
    errors: list[Any] = []
    transport.on("error", errors.append)
    await transport.connect()
    await until(lambda: len(peer.received) >= 2)
    before = len(peer.received)
    # Over the bound in UTF-8 bytes (for "é", not in characters): the server would close with 1009.
    output = char * (MAX_SENT_MESSAGE_BYTES // len(char.encode()) + 1)
    with pytest.raises(ConfigurationError, match=f"{MAX_SENT_MESSAGE_BYTES}-byte limit"):
        transport.send_function_call_output({"call_id": "call_1", "name": "f"}, output)
    transport.send_function_call_output({"call_id": "call_1", "name": "f"}, "too long: cut")
    await until(lambda: len(peer.received) >= before + 2)
    assert [e["type"] for e in peer.received[before:]] == ["conversation.item.create", "response.create"]
    assert peer.received[before]["item"]["output"] == "too long: cut"
    assert transport.status == "connected" and errors == []
    transport.close()
