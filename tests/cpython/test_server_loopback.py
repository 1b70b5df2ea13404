"""The loopback-only ICE of the server's WebRTC calls (``_loopback``), piece by piece: a browser
offers and checks from the machine's other addresses too, and none of those may be used."""

from __future__ import annotations

import aioice.ice
import pytest
from aioice import stun
from aiortc import RTCPeerConnection, RTCSessionDescription
from webrtc_peer import Microphone

from pyodide_realtime_server import _loopback

FOREIGN = "192.168.1.20"


class Protocol:
    """Stands in for aioice's socket protocol: records what the ICE agent answers."""

    def __init__(self) -> None:
        self.sent: list[tuple[stun.Message, tuple[str, int]]] = []

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


async def _offer() -> str:
    peer = RTCPeerConnection(_loopback.configuration())
    try:
        peer.addTrack(Microphone())
        peer.createDataChannel("oai-events")
        await peer.setLocalDescription(await peer.createOffer())
        return str(peer.localDescription.sdp)
    finally:
        await peer.close()


def test_host_candidates_are_gathered_on_127_0_0_1_only() -> None:
    _loopback.install()
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert _loopback.configuration().iceServers == []  # no fallback to a public STUN server


@pytest.mark.asyncio
async def test_an_offers_foreign_candidates_are_dropped() -> None:
    _loopback.install()
    offer = await _offer()
    loopback = next(line for line in offer.splitlines() if line.startswith("a=candidate:"))
    foreign = loopback.replace("127.0.0.1", FOREIGN)
    kept = _loopback.loopback_offer(offer.replace(loopback, f"{loopback}\r\n{foreign}"))
    assert loopback in kept and FOREIGN not in kept


@pytest.mark.asyncio
async def test_checks_from_other_addresses_are_ignored() -> None:
    _loopback.install()
    pc = RTCPeerConnection(_loopback.configuration())
    try:
        await pc.setRemoteDescription(RTCSessionDescription(await _offer(), "offer"))
        _loopback.refuse_foreign_checks(pc)
        (transceiver,) = pc.getTransceivers()
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        assert pc.sctp is not None and pc.sctp.transport.transport.iceGatherer._connection is connection  # bundled
        protocol = Protocol()
        check = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)  # unsigned
        connection.request_received(check, (FOREIGN, 50000), protocol)
        assert protocol.sent == []  # not even refused: as if it never came
        connection.request_received(check, ("127.0.0.1", 50000), protocol)
        assert [(message.message_class, addr) for message, addr in protocol.sent] == [(stun.Class.ERROR, ("127.0.0.1", 50000))]
    finally:
        await pc.close()
