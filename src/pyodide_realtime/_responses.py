"""Response sequencing: when a ``response.create`` may go on the wire, as one explicit state machine.

The Realtime API runs one response at a time: a ``response.create`` sent while one runs is refused
(``conversation_already_has_active_response``). So ours are held while a response runs, and one is
released when the state machine comes back to IDLE. h11's ``_state.py`` is the model: everything
that changes this state lives here, the event-triggered transitions are one table
(:data:`TRANSITIONS`), and the one state-triggered transition (IDLE with a request held: send it) is
written out in :meth:`ResponseSequencer._settle`.

Triggers come from the server (a response was created / is done, our create was refused) and from the
app (send a create, send a cancel). A server trigger that the table does not list for the current
state changes nothing: a peer's odd order never raises. An app trigger that it does not list means
"not now": a create is held, a cancel is not sent.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._client_events import encode_event

__all__ = ["ResponseState", "Trigger", "TRANSITIONS", "ResponseSequencer", "ACTIVE_RESPONSE_ERROR", "CANCEL_NOT_ACTIVE_ERROR"]

#: The error the server answers a ``response.create`` with while another response runs.
ACTIVE_RESPONSE_ERROR = "conversation_already_has_active_response"
_RESPONSE_CREATE_ID_PREFIX = "pyrt_response_create_"
#: The server's answer to a ``response.cancel`` that crossed the end of its response (the interrupt was
#: pressed as the server sent the last of the reply): for a cancel of ours it is no fault of anyone's.
CANCEL_NOT_ACTIVE_ERROR = "response_cancel_not_active"
_RESPONSE_CANCEL_ID_PREFIX = "pyrt_response_cancel_"
#: Our ``response.create`` events kept by event_id, to send again one the server refused because a
#: response of its own (server VAD) started first. Only the last few can still be answered.
_MAX_RECENT_CREATES = 8
#: Ids of the last responses done: a ``response.created`` that a proxy delivered after its own
#: ``response.done`` must not start a response that nothing would ever end.
_MAX_FINISHED = 16


class ResponseState(enum.Enum):
    IDLE = "idle"  # no response runs and none was asked for
    REQUESTED = "requested"  # our response.create is on the wire, not answered yet
    RUNNING = "running"  # a response runs (ours, or one the server started itself)
    CANCELLING = "cancelling"  # it runs and we sent response.cancel for it


class Trigger(enum.Enum):
    SEND_CREATE = "send response.create"  # app
    SEND_CANCEL = "send response.cancel"  # app
    CREATED = "response.created"  # server
    DONE = "response.done"  # server
    CREATE_CROSSED = "our create refused: a response is active"  # server
    CREATE_FAILED = "our create refused"  # server
    CLOSED = "connection closed"  # I/O layer


IDLE, REQUESTED, RUNNING, CANCELLING = ResponseState
#: state -> trigger -> new state. Server triggers missing here leave the state as it is.
TRANSITIONS: dict[ResponseState, dict[Trigger, ResponseState]] = {
    IDLE: {
        Trigger.SEND_CREATE: REQUESTED,
        Trigger.CREATED: RUNNING,  # the server started one itself (server VAD)
        Trigger.CLOSED: IDLE,
    },
    REQUESTED: {
        Trigger.CREATED: RUNNING,
        Trigger.DONE: IDLE,
        # The server says one is active: it is (its response.created is on its way).
        Trigger.CREATE_CROSSED: RUNNING,
        Trigger.CREATE_FAILED: IDLE,
        Trigger.CLOSED: IDLE,
    },
    RUNNING: {
        Trigger.SEND_CANCEL: CANCELLING,
        Trigger.CREATED: RUNNING,
        Trigger.DONE: IDLE,
        Trigger.CLOSED: IDLE,
    },
    CANCELLING: {
        Trigger.CREATED: RUNNING,  # a new response: the cancel was for the one before
        Trigger.DONE: IDLE,
        Trigger.CLOSED: IDLE,
    },
}


@dataclass
class _Create:
    event: dict[str, Any]
    #: Made with parameters (``request_response({...})``, ``send_event``): each is honoured. Plain
    #: requests (after a message, a function output) made while waiting collapse into one.
    manual: bool


class ResponseSequencer:
    """The sequencing state of one connection. Methods return the frames to send, oldest first."""

    def __init__(self) -> None:
        self.state: ResponseState = IDLE
        #: The id of the running response ("" when none runs or the server gave none).
        self.response_id: str = ""
        self._in_flight: str | None = None
        self._in_flight_event: dict[str, Any] | None = None
        #: The ``response.create`` the last ``response.created`` answered (None: the server's own).
        self.answered: dict[str, Any] | None = None
        self._held: deque[_Create] = deque()
        self._recent: deque[_Create] = deque(maxlen=_MAX_RECENT_CREATES)
        self._finished: deque[str] = deque(maxlen=_MAX_FINISHED)
        #: The event_ids of our last cancels, to know the server's answer to one as ours.
        self._cancels: deque[str] = deque(maxlen=_MAX_RECENT_CREATES)
        self._counter = 0

    @property
    def running(self) -> bool:
        return self.state is RUNNING or self.state is CANCELLING

    @property
    def held(self) -> int:
        """``response.create`` events waiting for the running response to finish."""
        return len(self._held)

    def _fire(self, trigger: Trigger) -> bool:
        new = TRANSITIONS[self.state].get(trigger)
        if new is None:
            return False
        self.state = new
        return True

    def _settle(self) -> list[str]:
        """The state-triggered transition: IDLE with a create held sends it."""
        if self.state is IDLE and self._held:
            return [self._dispatch(self._held.popleft())]
        return []

    def _dispatch(self, create: _Create) -> str:
        event_id = create.event.get("event_id")
        tagged = isinstance(event_id, str)
        if not tagged:
            event_id = f"{_RESPONSE_CREATE_ID_PREFIX}{self._counter + 1}"
            create = _Create({**create.event, "event_id": event_id}, create.manual)
        text = encode_event(create.event)
        if not tagged:
            self._counter += 1
        self._fire(Trigger.SEND_CREATE)
        self._in_flight = event_id
        self._in_flight_event = create.event
        self._recent.append(create)
        return text

    # App triggers ----------------------------------------------------------------------------------
    def request(self, event: dict[str, Any], *, manual: bool) -> list[str]:
        """Send ``event`` (a ``response.create``) now if IDLE, else hold it. ConfigurationError (and no
        change) if it cannot be encoded."""
        if self.state is IDLE and not self._held:
            return [self._dispatch(_Create(event, manual))]
        if not manual and self._held and not self._held[-1].manual:
            return []  # a plain request already waits: it serves for both
        encode_event(event)  # refused now, not when it is released from inside a server event
        self._held.append(_Create(event, manual))
        return []

    def cancel(self, *, explicit: bool = False) -> bool:
        """Whether to send ``response.cancel``: once per running response. ``explicit`` (the app's own
        ``send_event``) sends it even when nothing runs, as asked, unless one is already pending."""
        if self.state is CANCELLING:
            return False  # a second cancel only earns response_cancel_not_active
        return self._fire(Trigger.SEND_CANCEL) or explicit

    def cancel_event(self) -> dict[str, Any]:
        """Our ``response.cancel``: tagged, so that the server's ``response_cancel_not_active`` answer to it
        is known as ours (see :meth:`server_error`), and naming the running response, so that it can
        never cancel a newer one that crossed it."""
        self._counter += 1
        event_id = f"{_RESPONSE_CANCEL_ID_PREFIX}{self._counter}"
        self._cancels.append(event_id)
        event: dict[str, Any] = {"type": "response.cancel", "event_id": event_id}
        if self.response_id:
            event["response_id"] = self.response_id
        return event

    # Server triggers -------------------------------------------------------------------------------
    def created(self, response_id: str) -> list[str]:
        self.answered = self._in_flight_event if self.state is REQUESTED else None
        self._fire(Trigger.CREATED)
        self._in_flight = None
        self._in_flight_event = None
        self.response_id = response_id
        return []

    def finished(self, response_id: str) -> bool:
        """Whether ``response_id`` is done already (its ``response.created`` came late: ignore it)."""
        return bool(response_id) and response_id in self._finished

    def done(self, response_id: str = "") -> list[str]:
        """A response ended (any shape of ``response.done``): release the next held create."""
        if response_id:
            self._finished.append(response_id)
        self._fire(Trigger.DONE)
        self._in_flight = None
        self.response_id = ""
        return self._settle()

    def server_error(self, code: str | None, event_id: str | None, message: str | None) -> tuple[bool, list[str]]:
        """An ``error`` event. Returns (handled, frames): handled when it refused our create because a
        response of the server's own crossed it; that create is then sent again after that response, or
        when it answers a cancel of ours that crossed the end of its response (nothing was left to cancel)."""
        if code == CANCEL_NOT_ACTIVE_ERROR and event_id is not None and event_id in self._cancels:
            self._cancels.remove(event_id)
            return True, []
        if code == ACTIVE_RESPONSE_ERROR and event_id is not None:
            create = next((c for c in self._recent if c.event.get("event_id") == event_id), None)
            if create is not None:
                self._recent.remove(create)
                if self._in_flight == event_id:
                    self._in_flight = None
                    self._fire(Trigger.CREATE_CROSSED)
                if create.manual or not self._held or self._held[0].manual:
                    self._held.appendleft(create)  # a plain request already waiting serves for both
                return True, self._settle()
        if self._in_flight is None:
            return False, []
        # An error without an event_id that is clearly about response.create also frees the slot.
        about_create = event_id is None and ("response_create" in (code or "") or "response.create" in (message or ""))
        if event_id == self._in_flight or about_create:
            self._in_flight = None
            self._fire(Trigger.CREATE_FAILED)
            return False, self._settle()
        return False, []

    def closed(self) -> str | None:
        """The connection is gone: forget everything. Returns the id of a response it cut ("" if the
        server had not named it), or None if none was running."""
        cut = self.response_id if self.running else None
        self._fire(Trigger.CLOSED)
        self.state = IDLE
        self.response_id = ""
        self._in_flight = None
        self._held.clear()
        self._recent.clear()
        self._finished.clear()
        return cut
