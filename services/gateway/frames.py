"""The frames a client may send, checked before anything else is done with them."""

from dataclasses import dataclass

import orjson

from services.gateway.closes import ErrorCode

MAX_TEXT_CHARS = 2000
MAX_REF_CHARS = 128


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    ref: str | None


@dataclass(frozen=True, slots=True)
class Leave:
    """An explicit leave: the user leaves the room now, with no grace."""


@dataclass(frozen=True, slots=True)
class Ping:
    """An application-level heartbeat, answered with ``pong``: browsers cannot see WebSocket pings."""


@dataclass(frozen=True, slots=True)
class Typing:
    """The user is typing: shown to the room's other members, never stored."""


@dataclass(frozen=True, slots=True)
class FrameError:
    code: str
    detail: str
    ref: str | None = None

    def frame(self) -> str:
        error = {"type": "error", "code": self.code, "detail": self.detail}
        if self.ref is not None:
            error["ref"] = self.ref
        return orjson.dumps(error).decode()


ClientFrame = ChatMessage | Leave | Ping | Typing | FrameError

PONG_FRAME = '{"type":"pong"}'
_SIGNALS: dict[str, ClientFrame] = {"leave": Leave(), "ping": Ping(), "typing": Typing()}
_NOT_AN_OBJECT = FrameError(ErrorCode.INVALID_FRAME, "Frames must be JSON objects.")


def parse_client_frame(raw: str) -> ClientFrame:
    """What the client asks for, or the error frame that tells it why not."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_AN_OBJECT
    if not isinstance(data, dict):
        return _NOT_AN_OBJECT
    ref = data.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_CHARS):
        return FrameError(ErrorCode.INVALID_FRAME, f"'ref' must be a string of at most {MAX_REF_CHARS} characters.")
    kind = data.get("type")
    if kind != "message":
        signal = _SIGNALS.get(kind) if isinstance(kind, str) else None
        if signal is not None:
            return signal
        return FrameError(
            ErrorCode.INVALID_FRAME,
            f"Unknown frame type {str(kind)[:32]!r}; expected 'message', 'leave', 'ping' or 'typing'.",
            ref,
        )
    text = data.get("text")
    if not isinstance(text, str):
        return FrameError(ErrorCode.INVALID_FRAME, "A message needs a 'text' string.", ref)
    text = text.strip()
    if not text:
        return FrameError(ErrorCode.INVALID_FRAME, "A message cannot be empty.", ref)
    if len(text) > MAX_TEXT_CHARS:
        return FrameError(ErrorCode.TOO_LONG, f"A message is at most {MAX_TEXT_CHARS} characters.", ref)
    return ChatMessage(text=text, ref=ref)
