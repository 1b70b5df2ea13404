"""The tests run where nothing can leave the machine: ./build.sh runs pytest in a network namespace of its
own with only the loopback interface up (build.sh's ``offline``). A request to any other address fails at
once, by construction, rather than by every part remembering to stay on 127.0.0.1."""

from __future__ import annotations

import errno
import socket

import pytest

#: Addresses reserved for documentation (RFC 5737, RFC 3849): nothing answers there anywhere, so only
#: the error's kind tells whether a route existed.
ELSEWHERE_V4 = "192.0.2.1"
HINT = "run the tests through ./build.sh pytest (or ./build.sh test), which runs them offline"


def test_only_the_loopback_interface_exists() -> None:
    assert [name for _, name in socket.if_nameindex()] == ["lo"], HINT


def test_a_connection_to_another_address_fails_at_once_with_no_route() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)  # a route would leave the SYN waiting; none gives ENETUNREACH at once
        with pytest.raises(OSError) as raised:
            sock.connect((ELSEWHERE_V4, 80))
    assert raised.value.errno == errno.ENETUNREACH, (raised.value, HINT)


def test_a_name_does_not_resolve() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("pypi.org", 443)


def test_loopback_still_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=10) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"
