"""Event ids and frames as the gateway handles them."""

import orjson
import pytest

from services.common.redis_schema import event_frame, frame_event_id, parse_event_id


def test_event_ids_sort_like_the_timeline():
    ids = ["1700000000000-10", "1700000000000-9", "1699999999999-0", "1700000000001-0"]
    assert sorted(ids, key=parse_event_id) == ["1699999999999-0", "1700000000000-9", "1700000000000-10", "1700000000001-0"]


@pytest.mark.parametrize("bad", ["", "abc", "12-x", "-1", "1--2", "1.5-2"])
def test_parse_event_id_rejects_anything_else(bad):
    with pytest.raises(ValueError):
        parse_event_id(bad)


def test_event_frame_puts_the_id_first_and_stays_valid_json():
    body = orjson.dumps({"type": "message", "username": "ana", "text": 'say "hi" {}', "ts": "2026-01-01T00:00:00.000Z"})
    frame = event_frame("1700000000000-3", body.decode())
    assert orjson.loads(frame) == {"id": "1700000000000-3", **orjson.loads(body)}
    assert frame_event_id(frame) == "1700000000000-3"
    assert frame_event_id('{"type":"typing","username":"ana"}') is None, "an ephemeral frame has no id"
