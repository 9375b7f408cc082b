"""The delivery promise: acked messages reach every member once, in id order, and resume fills gaps."""

import asyncio

from redis.asyncio import RedisCluster

from services.common.redis_schema import parse_event_id, room_events_key, room_key


async def collect_messages(socket, count: int, timeout: float = 30) -> list[dict]:
    messages = []
    async with asyncio.timeout(timeout):
        while len(messages) < count:
            frame = await socket.recv(timeout)
            if frame["type"] == "message":
                messages.append(frame)
    return messages


async def test_three_clients_on_two_replicas_get_every_message_once_in_order(new_user, new_room, open_socket):
    users = [await new_user() for _ in range(3)]
    code = await new_room(users[0])
    sockets = [await open_socket(user, code, gateway=i % 2) for i, user in enumerate(users)]
    for socket in sockets:
        await socket.recv_type("welcome")

    total = 200
    acks: dict[str, list[str]] = {}

    async def send_all(index: int) -> None:
        for n in range(index, total, 3):
            await sockets[index].send({"type": "message", "text": f"msg {n}", "ref": f"r{n}"})
            await asyncio.sleep(0.03)  # within the per-connection rate limit the tests configure

    receivers = [
        asyncio.create_task(collect_everything(socket, total, len(range(i, total, 3)), acks))
        for i, socket in enumerate(sockets)
    ]
    await asyncio.gather(*(send_all(i) for i in range(3)))
    received = await asyncio.gather(*receivers)

    assert sorted(acks) == sorted(f"r{n}" for n in range(total))
    assert all(len(ids) == 1 for ids in acks.values()), "every ref is acked exactly once"
    acked_ids = {ids[0] for ids in acks.values()}
    for messages in received:
        ids = [m["id"] for m in messages]
        assert len(ids) == len(set(ids)) == total, "exactly once"
        assert ids == sorted(ids, key=parse_event_id), "in id order"
        assert set(ids) == acked_ids
        assert sorted(m["text"] for m in messages) == sorted(f"msg {n}" for n in range(total))


async def collect_everything(socket, total: int, own: int, acks: dict[str, list[str]]) -> list[dict]:
    """Every message of the room and this socket's ``own`` acks (put in the shared ``acks``)."""
    messages = []
    acked = 0
    async with asyncio.timeout(60):
        while len(messages) < total or acked < own:
            frame = await socket.recv(60)
            if frame["type"] == "message":
                messages.append(frame)
            elif frame["type"] == "ack":
                acks.setdefault(frame["ref"], []).append(frame["id"])
                acked += 1
            elif frame["type"] == "error":
                raise AssertionError(f"unexpected error frame {frame}")
    return messages


async def test_reconnect_with_since_gets_exactly_what_was_missed(pair, open_socket):
    bob, code, a, b = pair.bob, pair.code, pair.a, pair.b
    await a.send({"type": "message", "text": "before", "ref": "before"})
    last_seen = (await collect_messages(b, 1))[0]["id"]
    await b.close()

    missed = []
    for n in range(50):
        missed.append(await a.say(f"missed {n}"))

    back = await open_socket(bob, code, gateway=0, since=last_seen)
    welcome = await back.recv_type("welcome")
    history = [event for event in welcome["history"] if event["type"] == "message"]
    assert [event["id"] for event in history] == missed
    assert [event["text"] for event in history] == [f"missed {n}" for n in range(50)]
    assert welcome["truncated"] is False

    await a.send({"type": "message", "text": "live", "ref": "live"})
    live = await collect_messages(back, 1)
    assert live[0]["text"] == "live"


async def test_since_older_than_retained_history_is_flagged(stack, new_user, new_room, open_socket, redis_client):
    alice = await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code)
    await a.recv_type("welcome")
    for n in range(3):
        await a.say(f"m{n}")
    first = (await redis_client.xrange(room_events_key(code), count=1))[0][0]
    await redis_client.xtrim(room_events_key(code), maxlen=2, approximate=False)
    again = await open_socket(alice, code, since=first)
    welcome = await again.recv_type("welcome")
    assert welcome["truncated"] is True
    assert len(welcome["history"]) == 2


async def test_invalid_since_gets_an_error_and_the_latest_history(new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code, since="yesterday")
    error = await socket.recv()
    assert error["type"] == "error" and error["code"] == "invalid_since"
    welcome = await socket.recv()
    assert welcome["type"] == "welcome" and welcome["history"]


async def test_messages_sent_at_once_are_each_stored_once_even_after_a_script_flush(
    new_user, new_room, open_socket, redis_client
):
    users = [await new_user() for _ in range(6)]
    code = await new_room(users[0])
    sockets = [await open_socket(user, code, gateway=0) for user in users]
    for socket in sockets:
        await socket.recv_type("welcome")
    # Redis forgetting its scripts (as after a restart) must not lose a batch.
    await redis_client.script_flush()
    ids = await asyncio.gather(*(socket.say(f"together {i}") for i, socket in enumerate(sockets)))
    assert len(set(ids)) == len(sockets)
    stored = await redis_client.xrange(room_events_key(code))
    texts = [entry["e"] for _, entry in stored if '"type":"message"' in entry["e"]]
    assert len(texts) == len(sockets)


async def test_a_rooms_events_travel_on_its_own_channel_sharded_on_a_cluster(new_user, new_room, open_socket, redis_client):
    """One server: a classic channel. A cluster: a shard channel on the primary that owns the room's slot only."""
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code)
    await socket.recv_type("welcome")
    channel = room_key(code)
    if isinstance(redis_client, RedisCluster):
        await redis_client.initialize()
        owner = redis_client.get_node_from_key(channel)
        for node in redis_client.get_primaries():
            shard_channels = await redis_client.execute_command("PUBSUB", "SHARDCHANNELS", target_nodes=node)
            assert (channel in shard_channels) == (node.name == owner.name), node.name
            assert channel not in await redis_client.execute_command("PUBSUB", "CHANNELS", target_nodes=node)
    else:
        assert channel in await redis_client.pubsub_channels()
