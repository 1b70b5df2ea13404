"""ICE on loopback only: the local server's WebRTC peers use 127.0.0.1 and nothing else.

The server stands in for the cloud on one machine; media must never leave it, and a test run (in a
network namespace with only ``lo``) must not depend on the machine's other addresses. Out of the box
aiortc does the opposite in three places, each fixed here:

- ``aioice`` leaves loopback out of the host candidates it gathers (and, with only ``lo``, gathers
  none at all): ``install()`` makes its address lookup answer ``127.0.0.1`` alone. This is a
  process-wide setting of ``aioice``, since aiortc offers no per-connection one.
- Without ICE servers, aiortc falls back to a public STUN server: ``configuration()`` names none.
- A browser offers (and checks from) its other addresses too, and if one of those checks is answered
  its pair can win: ``loopback_offer()`` drops the offer's candidates that are not 127.0.0.1, and
  ``refuse_foreign_checks()`` ignores incoming connectivity checks from any other source.
"""

from __future__ import annotations

import functools
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection

LOOPBACK = "127.0.0.1"


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK] if use_ipv4 else []


def install() -> None:
    """Gather host candidates on 127.0.0.1 only (idempotent)."""
    aioice.ice.get_host_addresses = _loopback_addresses


def configuration() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


def loopback_offer(sdp: str) -> str:
    """``sdp`` without its ``a=candidate`` lines for addresses other than 127.0.0.1."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 5 or fields[4] != LOOPBACK:  # foundation component transport priority ADDRESS
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def refuse_foreign_checks(pc: RTCPeerConnection) -> None:
    """Ignore connectivity checks whose source is not 127.0.0.1, on every ICE transport of ``pc``.

    Call after ``setRemoteDescription`` (which creates the transports) and before
    ``setLocalDescription`` (which starts ICE). aiortc exposes the ICE agent only as the gatherer's
    private ``_connection``: if that ever changes this fails loudly instead of letting checks through.
    """
    gatherers = {
        id(t.receiver.transport.transport.iceGatherer): t.receiver.transport.transport.iceGatherer for t in pc.getTransceivers()
    }
    if pc.sctp is not None:
        gatherer = pc.sctp.transport.transport.iceGatherer
        gatherers[id(gatherer)] = gatherer
    for gatherer in gatherers.values():
        connection: aioice.ice.Connection = gatherer._connection
        connection.request_received = functools.partial(_from_loopback_only, connection.request_received)  # type: ignore[method-assign]


def _from_loopback_only(handle: Any, message: Any, addr: tuple[str, int], protocol: Any) -> None:
    if addr[0] == LOOPBACK:
        handle(message, addr, protocol)
