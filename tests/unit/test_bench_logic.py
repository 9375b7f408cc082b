"""The bench's own logic: the picows yardstick's RESP reader and framing, the web client's backoff as
the load generator replays it, where the reconnect storm puts rooms, Sala-over-yardstick ratios, and
the memory probe's attribution, and the cluster workload's RESP counting, room placement and arithmetic."""

import random
import tracemalloc
from array import array
from collections import Counter

import pytest
from websockets.frames import Frame, Opcode

# The yardstick needs the bench extra (picows); `make unit` runs with it, a bare `.[test]` install skips these.
pytest.importorskip("picows")

from bench.loadgen import BACKOFF_ATTEMPTS, MemberSpec, backoff_delay
from bench.picows_gateway import command, encode_text_frame, parse_resp
from bench.redisdrive import AppendCommands, Lane, _links, split
from bench.redisnodes import Deployment, Node, slot_owners
from bench.report import render
from bench.resp import ReplyCounter
from bench.resp import command as resp_command
from bench.runner import ratios
from bench.workloads.cluster import balanced_codes, lanes, marginal_us_per_message, per_shard, shards_needed
from bench.workloads.memprobe import attribute, package, short
from bench.workloads.storm import Sampler, latency_window, place
from tools.devstack import ROOT

PUSH = b"*3\r\n$7\r\nmessage\r\n$9\r\nbench:r:1\r\n$5\r\nhello\r\n"


def test_a_pubsub_push_parses_into_its_three_parts() -> None:
    assert parse_resp(PUSH, 0) == ([b"message", b"bench:r:1", b"hello"], len(PUSH))


@pytest.mark.parametrize("cut", range(1, len(PUSH)))
def test_a_push_cut_anywhere_is_not_parsed_until_it_is_whole(cut: int) -> None:
    assert parse_resp(PUSH[:cut], 0) is None


def test_consecutive_values_parse_one_after_another() -> None:
    buffer = b":1\r\n" + PUSH + b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    first, offset = parse_resp(buffer, 0)
    second, offset = parse_resp(buffer, offset)
    third, offset = parse_resp(buffer, offset)
    assert (first, second[2], third) == (1, b"hello", [b"subscribe", b"c", 1])
    assert offset == len(buffer)


def test_a_payload_holding_crlf_is_read_by_its_length() -> None:
    buffer = b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\na\r\nb\r\n"
    assert parse_resp(buffer, 0)[0] == [b"message", b"c", b"a\r\nb"]


def test_a_redis_error_is_raised() -> None:
    with pytest.raises(RuntimeError, match="ERR wrong"):
        parse_resp(b"-ERR wrong\r\n", 0)


def test_a_command_is_resp_that_parses_back() -> None:
    assert parse_resp(command(b"PUBLISH", b"c", b"x\r\ny"), 0)[0] == [b"PUBLISH", b"c", b"x\r\ny"]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_the_yardstick_frames_text_as_websockets_does(size: int) -> None:
    payload = b"a" * size
    assert encode_text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


@pytest.mark.parametrize("attempt", range(BACKOFF_ATTEMPTS))
def test_backoff_stays_within_the_web_clients_bounds(attempt: int) -> None:
    ceiling = min(10.0, 0.5 * 2**attempt)
    random.seed(attempt)
    delays = [backoff_delay(attempt) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not in lockstep


def _members(rooms: int, size: int) -> list[MemberSpec]:
    return [MemberSpec(f"u{r}x{s}", f"R{r}", f"/ws?room=R{r}", {}) for r in range(rooms) for s in range(size)]


def test_storm_keeps_each_room_on_one_gateway_and_sends_the_dead_ones_rooms_to_the_survivors() -> None:
    ports = [1001, 1002, 1003]
    placed = place(_members(12, 5), 5, ports)
    by_room: dict[str, set[tuple[int, int]]] = {}
    for spec in placed:
        by_room.setdefault(spec.room, set()).add((spec.port, spec.fallback))
    assert all(len(routes) == 1 for routes in by_room.values())
    routes = [next(iter(r)) for r in by_room.values()]
    assert Counter(home for home, _ in routes) == {1001: 4, 1002: 4, 1003: 4}
    assert all(fallback == home for home, fallback in routes if home != 1003)
    assert Counter(fallback for home, fallback in routes if home == 1003) == {1001: 2, 1002: 2}


def test_ratios_compare_sala_with_each_yardstick_shape_by_shape() -> None:
    def fanout(target: str, cpu: float) -> dict:
        latency = {"p50": 1.0, "p99": 2.0}
        return {"target": target, "shape": "5x50", "server_cpu_us_per_delivery": cpu, "latency_ms": latency}

    def idle(target: str, kib: float) -> dict:
        return {"target": target, "room_size": 10, "rss_kib_per_connection": kib,
                "server_cpu_ms_per_connection": 1.0, "connect_seconds": 1.0}  # fmt: skip

    report = {
        "fanout": [fanout("sala", 20.0), fanout("baseline", 16.0), fanout("picows", 10.0)],
        "saturation": [],
        "idle": [idle("sala", 24.0), idle("baseline", 16.0), idle("picows", 30.0)],
    }
    rows = {(r["workload"], r["figure"], r["against"]): r["ratio"] for r in ratios(report)}
    assert rows[("fanout", "server_cpu_us_per_delivery", "baseline")] == 1.25
    assert rows[("fanout", "server_cpu_us_per_delivery", "picows")] == 2.0
    assert rows[("idle", "rss_kib_per_connection", "picows")] == 0.8
    assert not any(against == "sala" for _, _, against in rows)


def _hold(count: int, size: int) -> list[bytearray]:
    return [bytearray(size) for _ in range(count)]


def test_the_memory_probe_charges_each_socket_what_was_allocated_and_kept_and_says_where() -> None:
    tracemalloc.start(8)
    try:
        before = tracemalloc.take_snapshot()
        kept = _hold(50, 4000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    figures = attribute(before, after, sockets=10)
    top = figures["by_line"][0]
    assert top["where"].startswith("tests/unit/test_bench_logic.py:")
    assert 50 * 4000 / 10 <= top["bytes_per_socket"] < 50 * 4100 / 10
    assert top["blocks_per_socket"] >= 5  # a bytearray is its object and its buffer
    assert figures["by_sala_line"][0]["where"] == "(no Sala frame)"
    assert len(kept) == 50


def test_frames_are_named_as_a_reader_knows_them() -> None:
    assert short(f"{ROOT}/services/gateway/hub.py") == "services/gateway/hub.py"
    assert package(f"{ROOT}/services/gateway/hub.py") == "services/gateway"
    assert package("/venv/lib/python3.11/site-packages/uvicorn/protocols/x.py") == "uvicorn"
    assert package("/usr/lib/python3.11/asyncio/tasks.py") == "asyncio"


def test_storm_cpu_is_read_between_samples_and_held_at_the_ends() -> None:
    sampler = Sampler(None, [], "gateway-3", kill_at=0.0, until=0.0)  # type: ignore[arg-type]
    sampler.times = [10.0, 11.0, 12.0]
    series = [0.0, 0.5, 1.5]
    assert sampler.at(series, 10.5) == 0.25
    assert sampler.at(series, 11.5) == 1.0
    assert sampler.at(series, 9.0) == 0.0
    assert sampler.at(series, 20.0) == 1.5
    assert sampler.rate(series, 11.0, 12.0) == 1.0


def test_bystander_latency_counts_only_deliveries_received_within_the_window() -> None:
    samples = array("q", [100, 5_000, 200, 7_000, 300, 9_000])  # (receive ns, latency µs) pairs
    window = latency_window(samples, 150, 300)
    assert window["deliveries"] == 1
    assert window["p99"] == 7.0
    assert latency_window(samples, 0, 50)["deliveries"] == 0


# The cluster workload.

REPLIES = b"*2\r\n$15\r\n1700000000000-0\r\n:0\r\n" + b"-ERR no such script\r\n" + b"$-1\r\n" + b":1\r\n"


@pytest.mark.parametrize("cut", range(len(REPLIES) + 1))
def test_replies_are_counted_whole_however_the_stream_is_cut(cut: int) -> None:
    counter = ReplyCounter()
    first = counter.feed(REPLIES[:cut])
    second = counter.feed(REPLIES[cut:])
    assert (first + second, counter.replies) == (4, 4)
    assert (counter.errors, counter.first_error) == (1, "ERR no such script")


def test_a_reply_is_not_counted_before_its_last_element_arrives() -> None:
    counter = ReplyCounter()
    assert counter.feed(b"*2\r\n$3\r\nabc\r\n") == 0
    assert counter.feed(b":0\r\n") == 1


def test_append_commands_are_whole_commands_each_with_a_ref_of_its_own_round_robin_over_rooms() -> None:
    commands = AppendCommands("f" * 40, ("A", "B"), b'{"type":"message"}', "me")
    first, second = commands.batch(3), commands.batch(2)
    assert ReplyCounter().feed(first + second) == 5  # a command is a RESP array too
    expected = resp_command("EVALSHA", "f" * 40, 1, "sala:room:{A}", 1000, '{"type":"message"}', "me 0", 1000)
    assert first.startswith(expected)
    assert (first + second).count(b"sala:room:{A}") == 3
    refs = [f"me {number}".encode() for number in range(5)]
    assert all((first + second).count(b"\r\n" + ref + b"\r\n") == 1 for ref in refs)


def test_a_total_is_split_into_near_equal_shares() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert sum(split(30001, 3)) == 30001


def test_slot_owners_read_the_primary_of_each_range_from_cluster_slots() -> None:
    reply = [
        [0, 5460, [b"127.0.0.1", 7000, b"id0"], [b"127.0.0.1", 7003, b"id3"]],
        [5461, 16383, [b"127.0.0.1", 7001, b"id1"]],
    ]
    owners = slot_owners(reply)
    assert (owners[0], owners[5460], owners[5461], owners[16383]) == (7000, 7000, 7001, 7001)


def _cluster() -> Deployment:
    nodes = [Node(7000, 1, True), Node(7001, 2, True), Node(7002, 3, True), Node(7003, 4, False)]
    return Deployment("cluster", nodes, lambda code: 7000 + sum(map(ord, code)) % 3, [])


def test_rooms_are_chosen_so_that_every_primary_owns_as_many_and_each_lane_drives_its_own() -> None:
    deployment = _cluster()
    codes = balanced_codes(deployment.owner, [7000, 7001, 7002], 4)
    assert Counter(deployment.owner(code) for code in codes) == {7000: 4, 7001: 4, 7002: 4}
    driven = lanes(deployment, codes)
    assert [lane.port for lane in driven] == [7000, 7001, 7002]
    assert all(deployment.owner(code) == lane.port for lane in driven for code in lane.codes)
    assert lanes(deployment, codes, deployment.primaries[:1]) == [driven[0]]
    assert isinstance(driven[0], Lane)


def test_sharded_stand_ins_read_every_primary_and_classic_ones_one_node_each() -> None:
    deployment = _cluster()
    codes = balanced_codes(deployment.owner, [7000, 7001, 7002], 2)
    sharded = _links(deployment, codes, 0, sharded=True)
    assert [(port, verb, len(owned)) for port, verb, owned in sharded] == [
        (7000, "SSUBSCRIBE", 2), (7001, "SSUBSCRIBE", 2), (7002, "SSUBSCRIBE", 2)
    ]  # fmt: skip
    classic = [_links(deployment, codes, index, sharded=False) for index in range(4)]
    assert [links[0][0] for links in classic] == [7000, 7001, 7002, 7003]
    assert all(links[0][2] == codes for links in classic)
    single = Deployment("single+replica", [Node(6379, 1, True), Node(6380, 2, False)], lambda code: 6379, [])
    assert {_links(single, codes, index, sharded=False)[0][0] for index in range(4)} == {6379}


def test_cpu_per_message_takes_the_idle_background_off_and_never_goes_negative() -> None:
    assert marginal_us_per_message(0.5, 0.1, 2.0, 10_000) == pytest.approx(30.0)
    assert marginal_us_per_message(0.1, 0.1, 2.0, 10_000) == 0.0
    assert marginal_us_per_message(0.1, 0.0, 1.0, 0) == 0.0


def test_shards_follow_the_capacity_load_model_at_half_a_core() -> None:
    assert shards_needed(1_000_000, 100_000) == 1  # 50,000 messages/s, 50,000 per shard
    assert shards_needed(1_000_000, 99_999) == 2
    assert shards_needed(10_000_000, 40_000) == 25


def _throughput(loaded: int, per_cpu_second: int, utilization: float) -> dict:
    nodes = [{"port": 7000 + i, "primary": True, "loaded": i < loaded, "cpu_utilization": utilization,
              "runqueue_wait_seconds": 0.5, "messages_per_second": 1000,
              "messages_per_cpu_second": per_cpu_second if i < loaded else None}
             for i in range(3)]  # fmt: skip
    return {"primaries_loaded": loaded, "placement": "pinned", "messages_per_second": 1000 * loaded, "wall_seconds": 5.0,
            "redis_us_per_message": 10.0, "loaders_cpu_utilization": 0.5, "subscribers_cpu_utilization": 0.1,
            "errors": 0, "redis_runqueue_wait_seconds": 0.1, "nodes": nodes}  # fmt: skip


def test_the_per_shard_ceiling_comes_from_the_run_with_one_primary_loaded_and_is_reported() -> None:
    cost = {"deployment": "cluster", "publish": "SPUBLISH", "subscribers": 4, "batch": 1, "redis_us_per_message": 60.0,
            "primaries_us_per_message": 40.0, "replicas_us_per_message": 20.0, "deliveries_received": 40,
            "deliveries_expected": 40, "errors": 0, "redis_runqueue_wait_seconds": 0.0}  # fmt: skip
    shard = per_shard([_throughput(3, 30_000, 0.5), _throughput(1, 60_000, 0.9)], [cost])
    assert (shard["messages_per_cpu_second"], shard["cpu_utilization"], shard["runqueue_wait_share"]) == (60_000, 0.9, 0.1)
    assert shard["messages_per_cpu_second_unbatched"] == 25_000
    # 50,000 and 500,000 messages/s; 30,000 and 12,500 per primary at half its core.
    assert shard["shards_needed"] == {"1000000": [2, 4], "10000000": [17, 40]}
    report = {"commit": "abc", "work_tree_clean": True, "preset": "default",
              "machine": {"cpus": 2, "cpu_model": "x", "python": "3.11", "placement": "p",
                          "load_generator_processes": 0, "loadavg_at_start": ["0", "0", "0"]},
              "cluster": {"body_bytes": 189, "cost": [cost], "throughput": [_throughput(1, 60_000, 0.9)],
                          "per_shard": shard}}  # fmt: skip
    text = render(report)
    assert "60,000" in text and "SPUBLISH" in text and "2 / 4" in text
    assert per_shard([_throughput(3, 30_000, 0.5)], [cost]) is None
