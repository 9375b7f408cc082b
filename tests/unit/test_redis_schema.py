"""Event ids and frames as the gateway handles them."""

import hashlib

import orjson
import pytest
from redis.exceptions import NoScriptError

from services.common.redis_schema import (
    APPEND_MESSAGE,
    HEARTBEAT,
    Script,
    event_frame,
    frame_event_id,
    parse_event_id,
    with_room_publish,
)


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


class _NodeWithoutTheScript:
    """A node as a client reaches it: it knows no script until one is sent whole."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.known: set[str] = set()

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: object) -> str:
        self.calls.append(("evalsha", numkeys, *keys_and_args))
        if sha not in self.known:
            raise NoScriptError("NOSCRIPT No matching script.")
        return "ran"

    async def eval(self, script: str, numkeys: int, *keys_and_args: object) -> str:
        self.calls.append(("eval", numkeys, *keys_and_args))
        self.known.add(hashlib.sha1(script.encode()).hexdigest())
        return "ran"


async def test_a_script_unknown_to_its_node_is_sent_whole_to_that_node_only():
    """No SCRIPT LOAD, which a cluster client sends to every primary, reachable or not."""
    node = _NodeWithoutTheScript()
    script = Script(node, "return 1")
    assert await script(keys=["sala:room:{AB12}"], args=[7]) == "ran"
    assert await script(keys=["sala:room:{AB12}"], args=[8]) == "ran"
    assert node.calls == [
        ("evalsha", 1, "sala:room:{AB12}", 7),
        ("eval", 1, "sala:room:{AB12}", 7),
        ("evalsha", 1, "sala:room:{AB12}", 8),
    ]


@pytest.mark.parametrize("sharded, command", [(True, "SPUBLISH"), (False, "PUBLISH")])
def test_room_events_are_published_sharded_on_a_cluster(sharded, command):
    script = with_room_publish(APPEND_MESSAGE, sharded)
    assert script.startswith(f"local ROOM_PUBLISH = '{command}'\n")
    assert with_room_publish(HEARTBEAT, sharded) == HEARTBEAT, "scripts that publish nothing are left as they are"
