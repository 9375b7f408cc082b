"""Client frames are checked before anything is done with them."""

import orjson
import pytest

from services.gateway.closes import ErrorCode
from services.gateway.frames import (
    MAX_TEXT_CHARS,
    ChatMessage,
    FrameError,
    Leave,
    Ping,
    Typing,
    parse_client_frame,
)


def test_a_message_is_trimmed_and_keeps_its_ref():
    assert parse_client_frame('{"type":"message","text":"  hi  ","ref":"r1"}') == ChatMessage("hi", "r1")
    assert parse_client_frame('{"type":"message","text":"hi"}') == ChatMessage("hi", None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "invalid_frame"),
        ("[]", "invalid_frame"),
        ('"text"', "invalid_frame"),
        ('{"type":"typo"}', "invalid_frame"),
        ('{"type":7}', "invalid_frame"),
        ('{"text":"hi"}', "invalid_frame"),
        ('{"type":"message","text":null}', "invalid_frame"),
        ('{"type":"message","text":"\\n\\t "}', "invalid_frame"),
        ('{"type":"message","text":"hi","ref":{"a":1}}', "invalid_frame"),
        ('{"type":"message","text":"hi","ref":"' + "r" * 129 + '"}', "invalid_frame"),
        ('{"type":"message","text":"' + "x" * (MAX_TEXT_CHARS + 1) + '"}', "too_long"),
    ],
)
def test_bad_frames_get_an_error_code(raw, code):
    result = parse_client_frame(raw)
    assert isinstance(result, FrameError) and result.code == code and result.detail


def test_error_frames_carry_the_ref_when_there_is_one():
    error = parse_client_frame('{"type":"message","text":"","ref":"r9"}')
    assert orjson.loads(error.frame()) == {"type": "error", "code": "invalid_frame", "detail": error.detail, "ref": "r9"}


def test_the_limit_counts_characters_not_bytes():
    assert isinstance(parse_client_frame(orjson.dumps({"type": "message", "text": "é" * MAX_TEXT_CHARS}).decode()), ChatMessage)


@pytest.mark.parametrize(
    ("raw", "frame"), [('{"type":"leave"}', Leave()), ('{"type":"ping"}', Ping()), ('{"type":"typing"}', Typing())]
)
def test_signals_need_nothing_but_their_type(raw, frame):
    assert parse_client_frame(raw) == frame


def test_an_unknown_type_is_named_briefly_and_keeps_the_ref():
    error = parse_client_frame(orjson.dumps({"type": "x" * 500, "ref": "r3"}).decode())
    assert isinstance(error, FrameError) and error.code == ErrorCode.INVALID_FRAME and error.ref == "r3"
    assert "x" * 32 in error.detail and "x" * 33 not in error.detail


def test_every_error_code_the_parser_uses_is_in_the_catalogue():
    raws = ["{", '{"type":"message","text":"' + "x" * (MAX_TEXT_CHARS + 1) + '"}', '{"type":"nope"}']
    assert {parse_client_frame(raw).code for raw in raws} <= set(ErrorCode)
