"""The frames a client may send, checked before anything else is done with them."""

from dataclasses import dataclass

import orjson

MAX_TEXT_CHARS = 2000
MAX_REF_CHARS = 128


@dataclass(frozen=True, slots=True)
class ChatMessage:
    text: str
    ref: str | None


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


def parse_client_frame(raw: str) -> ChatMessage | FrameError:
    """A message to send, or the error frame that tells the client why not."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return FrameError("invalid_frame", "Frames must be JSON objects.")
    if not isinstance(data, dict):
        return FrameError("invalid_frame", "Frames must be JSON objects.")
    ref = data.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_CHARS):
        return FrameError("invalid_frame", f"'ref' must be a string of at most {MAX_REF_CHARS} characters.")
    kind = data.get("type")
    if kind != "message":
        return FrameError("invalid_frame", f"Unknown frame type {kind!r}; expected 'message'.", ref)
    text = data.get("text")
    if not isinstance(text, str):
        return FrameError("invalid_frame", "A message needs a 'text' string.", ref)
    text = text.strip()
    if not text:
        return FrameError("invalid_frame", "A message cannot be empty.", ref)
    if len(text) > MAX_TEXT_CHARS:
        return FrameError("too_long", f"A message is at most {MAX_TEXT_CHARS} characters.", ref)
    return ChatMessage(text=text, ref=ref)
