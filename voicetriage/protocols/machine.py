"""What every protocol state machine offers the one connection driver.

The four protocols (native, Twilio, AudioHook, AudioSocket) are sans-I/O: the
driver in :mod:`voicetriage.server.connection` feeds them what arrived and
performs the :mod:`~voicetriage.protocols.actions` they return. This base class
holds the hooks with their common defaults and the one table of websocket
close codes (RFC 6455, section 7.4.1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voicetriage.core.errors import VoiceTriageError
from voicetriage.protocols.actions import Action, EndCall

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013

# error code -> close code; any other error closes with CLOSE_POLICY
_CLOSE_FOR = {
    "server_shutdown": CLOSE_GOING_AWAY,
    "server_busy": CLOSE_TRY_AGAIN,
    "server_shutting_down": CLOSE_TRY_AGAIN,
    "malformed_message": CLOSE_INVALID_DATA,
}
CLOSE_GRACE_S = 10.0  # how long we wait for a peer's close transaction after ours ended


def close_code_for(code: str | None) -> int:
    """The websocket close code for a call that ended with error ``code``."""
    return _CLOSE_FOR.get(code or "", CLOSE_POLICY)


def close_reason(text: str) -> str:
    """A websocket close reason: at most 123 bytes of UTF-8."""
    return text.encode("utf-8")[:123].decode("utf-8", "ignore")


@dataclass(frozen=True)
class Close:
    """How the websocket ends once the machine stops reading: send ``code``/``reason``,
    after waiting up to ``wait_peer_s`` for the peer to close first."""

    code: int = CLOSE_NORMAL
    reason: str = ""
    wait_peer_s: float = 0.0


class Machine:
    """Base of the protocol state machines: the hooks the driver calls."""

    name = "protocol"
    #: a language the platform set that the model cannot use is dropped (detect
    #: instead) rather than refusing the call: a platform setting must not cost a call
    retry_without_language = True
    #: the close frame of a call that ended normally
    normal_close = Close(CLOSE_NORMAL, "call ended")

    lost = False  # the peer went away (no close frame to send); set by the driver
    ended: EndCall | None = None  # the call's end, once the driver performed it

    # -- input ----------------------------------------------------------------
    def receive_text(self, text: str) -> list[Action]:
        raise NotImplementedError

    def receive_bytes(self, data: bytes) -> list[Action]:
        raise NotImplementedError

    def connection_lost(self) -> list[Action]:
        raise NotImplementedError

    def abort(self, message: str, code: str) -> list[Action]:
        """We end the call (idle, shutdown, limits): the protocol's own way."""
        raise NotImplementedError

    def idle_timeout(self, seconds: float) -> list[Action]:
        return self.abort(f"no message for {seconds:g} s", "idle_timeout")

    def shutdown(self) -> list[Action]:
        """The server is stopping: end the call (every final is still delivered)."""
        return self.abort("server shutting down", "server_shutdown")

    # -- the pipeline's answers -------------------------------------------------
    def call_started(self) -> list[Action]:
        return []

    def start_failed(self, error: VoiceTriageError) -> list[Action]:
        return self.abort(str(error), error.code)

    def push_failed(self, error: VoiceTriageError) -> list[Action]:
        """Audio, a gap or a digit the session refused: logged, the call goes on."""
        log.warning("%s: %s", self.name, error)
        return []

    def health_report(self, health: dict) -> list[Action]:
        return []

    def on_event(self, event: object) -> list[Action]:
        return []

    def finish(self) -> list[Action]:
        """After the call was flushed: the protocol's last replies."""
        return []

    # -- the connection ---------------------------------------------------------
    @property
    def reading(self) -> bool:
        """Whether the driver keeps reading the connection."""
        return self.ended is None and not self.lost

    def read_timeout(self, idle_s: float) -> float | None:
        return idle_s

    def close_frame(self) -> Close | None:
        """The websocket close once reading stops (None: the peer is gone)."""
        if self.lost:
            return None
        e = self.ended
        if e is None or e.error is None:
            return self.normal_close
        return Close(close_code_for(e.code), close_reason(e.error))


__all__ = ["Machine", "Close", "close_code_for", "close_reason", "CLOSE_NORMAL", "CLOSE_GOING_AWAY",
           "CLOSE_INVALID_DATA", "CLOSE_POLICY", "CLOSE_TOO_BIG", "CLOSE_INTERNAL", "CLOSE_TRY_AGAIN",
           "CLOSE_GRACE_S"]
