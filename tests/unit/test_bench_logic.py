"""The bench's own logic: the picows yardstick's RESP reader and framing, the web client's backoff as
the load generator replays it, where the reconnect storm puts rooms, Sala-over-yardstick ratios, and
the memory probe's attribution."""

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
from bench.runner import ratios
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
