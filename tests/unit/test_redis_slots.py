"""Every script Sala runs touches one Redis Cluster slot: the keys it is given, and those it derives."""

import re

import pytest

from services.common import redis_schema as schema


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), as Redis Cluster uses for key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The slot of a key, hash tags included (the part between the first ``{`` and the next ``}``)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key.encode()) % 16384


def test_crc16_matches_the_cluster_specification():
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("foo{bar}baz") == key_slot("bar")


ROOM_SUFFIXES = ["", ":events", ":conns", ":users", ":names", ":grace", ":refs", ":reforder"]


@pytest.mark.parametrize("code", ["ABCD", "X7Y9KQ", "34679ACDEFGHJKMN"])
def test_every_key_of_a_room_and_its_channel_share_one_slot(code):
    room = schema.room_key(code)
    slots = {key_slot(room + suffix) for suffix in ROOM_SUFFIXES}
    slots |= {key_slot(schema.room_events_key(code)), key_slot(schema.room_names_key(code))}
    assert slots == {key_slot(room)}
    assert schema.code_of_channel(room) == code


def test_the_indexes_each_live_in_one_slot():
    assert key_slot(schema.GATEWAYS) == key_slot(schema.DEAD_GATEWAYS)
    assert key_slot(schema.GRACES) == key_slot(schema.GRACE_VERSIONS)


ROOM_SCRIPTS = ["CREATE_ROOM", "JOIN", "LEAVE", "DROP_GATEWAY", "EXPIRE_GRACES", "APPEND_MESSAGE", "PUBLISH_EPHEMERAL"]


@pytest.mark.parametrize("name", ROOM_SCRIPTS)
def test_a_room_script_reaches_only_keys_derived_from_its_room(name):
    """Given KEYS[1] only, a room script may name no other key: every key it touches is ``room .. suffix``."""
    body = getattr(schema, name)
    assert not re.search(r"KEYS\[[2-9]\]", body), "a room script is given the room's key alone"
    for quoted in re.findall(r"'(sala:[^']*)'", body):
        pytest.fail(f"{name} names a key of its own: {quoted}")
    suffixes = set(re.findall(r"\.\. '(:[a-z]+)'", body))
    assert suffixes <= set(ROOM_SUFFIXES), f"{name} derives keys outside the room's: {suffixes - set(ROOM_SUFFIXES)}"


@pytest.mark.parametrize(
    "name, keys",
    [("INDEX_GRACE", [schema.GRACES, schema.GRACE_VERSIONS]), ("SETTLE_GRACE", [schema.GRACES, schema.GRACE_VERSIONS]),
     ("MARK_DEAD", [schema.GATEWAYS, schema.DEAD_GATEWAYS]), ("HEARTBEAT", [schema.GATEWAYS, schema.DEAD_GATEWAYS])],
)
def test_an_index_script_is_given_keys_of_one_slot_and_derives_none(name, keys):
    body = getattr(schema, name)
    assert len({key_slot(key) for key in keys}) == 1
    assert "..  '" not in body and not re.search(r"\.\. '[:]", body)
    assert max(int(n) for n in re.findall(r"KEYS\[(\d)\]", body)) == len(keys)
