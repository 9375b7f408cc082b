"""Reconnect storm: three Sala gateways hold N sockets, one is killed with SIGKILL, every client comes back.

Rooms are placed whole on one gateway each (as the edge's room hash does), so
a third of the members lose their socket at once; they reconnect as the web
client does (docs/protocol.md): a jittered backoff, ``since`` the last event
they saw, and the outbox of unacked messages sent again with the same
``ref``. They go to the surviving gateway the edge's hash would pick once the
dead upstream is out; the HTTP probe the web client makes after an unclean
close goes to auth and rooms, not to a gateway, and is left out. Everybody
chats throughout (typed messages wait in the outbox while a member is away).

The three gateways are started for the storm with the production handshake
gate (``SALA_HANDSHAKE_BURST`` at its default, ``SALA_HANDSHAKE_RATE_PER_SECOND``
at the default shared by the two survivors, which share one core here; or as
``--storm-handshake-rate`` and ``--storm-handshake-burst`` say): a handshake
beyond it is closed with 1013 and a retry hint, which the members wait out,
as the web client does, on their first connect as well.

Reported: the time from the kill until every client has its welcome again;
acked messages some member never got, live or in its reconnect's history
(must be 0); duplicates (0); the latency of deliveries to bystanders (members
on the surviving gateways) before, during and after the storm; and the
surviving gateways' CPU per reconnect: their CPU over the storm, less what
the chat cost per second before the kill. A reconnect within
``SALA_LEAVE_GRACE_SECONDS`` makes no join or leave, so the storm is
reconnects and the reaper's hand-off of the dead gateway's sockets, nothing
broadcast.
"""

import dataclasses
import signal
import threading
import time
from array import array
from bisect import bisect_left

from bench.context import Context
from bench.loadgen import MemberSpec
from bench.procstat import cpu_seconds, runqueue_wait_seconds, wait_idle
from bench.stats import latency_summary, percentile
from services.gateway.settings import GatewaySettings

GATEWAYS = 3
SAMPLE_SECONDS = 0.1
START_DELAY_SECONDS = 0.5


def handshake_gate(rate: float | None, burst: int | None) -> dict[str, str]:
    """The storm gateways' handshake settings: the given ones, else the production defaults (not the bench's).

    The default rate is meant for a replica with a core of its own; here the survivors share one, so each
    gets its share of the default rate.
    """
    fields = GatewaySettings.model_fields
    rate = fields["handshake_rate_per_second"].default / (GATEWAYS - 1) if rate is None else rate
    burst = fields["handshake_burst"].default if burst is None else burst
    return {"SALA_HANDSHAKE_RATE_PER_SECOND": f"{rate:g}", "SALA_HANDSHAKE_BURST": str(burst)}


def place(members: list[MemberSpec], room_size: int, ports: list[int]) -> list[MemberSpec]:
    """Room i on gateway i mod G; the last gateway's rooms fall back to the others, room by room."""
    survivors = ports[:-1]
    placed = []
    for index, spec in enumerate(members):
        room = index // room_size
        home = ports[room % len(ports)]
        fallback = survivors[room % len(survivors)] if home == ports[-1] else home
        placed.append(dataclasses.replace(spec, port=home, fallback=fallback))
    return placed


class Sampler(threading.Thread):
    """CPU seconds of the surviving gateways and of Redis, every ``SAMPLE_SECONDS``; kills the victim on time."""

    def __init__(self, ctx: Context, survivors: list[int], victim: str, kill_at: float, until: float) -> None:
        super().__init__(name="storm-sampler", daemon=True)
        self._ctx, self._survivors, self._victim = ctx, survivors, victim
        self._kill_at, self._until = kill_at, until
        self.times: list[float] = []
        self.gateway_cpu: list[float] = []
        self.redis_cpu: list[float] = []
        self.loadgen_cpu: list[float] = []
        self.gateway_wait: list[float] = []  # run-queue wait: runnable, but the CPU busy with something else
        self.killed_at: float | None = None

    def _sample(self) -> None:
        self.times.append(time.monotonic())
        self.gateway_cpu.append(sum(cpu_seconds(pid) for pid in self._survivors))
        self.redis_cpu.append(cpu_seconds(self._ctx.systems.pid("redis")))
        self.loadgen_cpu.append(sum(cpu_seconds(pid) for pid in self._ctx.swarm.pids))
        self.gateway_wait.append(sum(runqueue_wait_seconds(pid) for pid in self._survivors))

    def run(self) -> None:
        while time.monotonic() < self._until:
            if self.killed_at is None and time.monotonic() >= self._kill_at:
                self.killed_at = time.monotonic()
                self._ctx.systems.stack.stop_child(self._victim, signal.SIGKILL)
            self._sample()
            pause = (
                SAMPLE_SECONDS if self.killed_at is not None else min(SAMPLE_SECONDS, self._kill_at - time.monotonic())
            )
            time.sleep(max(0.0, pause))
        self._sample()

    def at(self, series: list[float], moment: float) -> float:
        """The series at ``moment``, interpolated between samples."""
        index = min(max(1, bisect_left(self.times, moment)), len(self.times) - 1)
        t0, t1 = self.times[index - 1], self.times[index]
        v0, v1 = series[index - 1], series[index]
        return v0 if t1 == t0 else v0 + (v1 - v0) * min(1.0, max(0.0, (moment - t0) / (t1 - t0)))

    def rate(self, series: list[float], start: float, end: float) -> float:
        return (self.at(series, end) - self.at(series, start)) / (end - start) if end > start else 0.0


def _seconds(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 3)


def latency_window(samples: array, start_ns: int, end_ns: int) -> dict:
    latencies = [samples[i + 1] for i in range(0, len(samples), 2) if start_ns <= samples[i] < end_ns]
    return {"deliveries": len(latencies), **latency_summary(latencies)}


def storm(
    ctx: Context,
    sockets: int,
    room_size: int,
    rate: float,
    before_seconds: float,
    storm_seconds: float,
    give_up_seconds: float,
    handshake_rate: float | None = None,
    handshake_burst: int | None = None,
) -> dict:
    systems = ctx.systems
    stack = systems.stack
    gate = handshake_gate(handshake_rate, handshake_burst)
    names = [stack.add_replica("gateway", gate) for _ in range(GATEWAYS)]
    try:
        for name in names:
            systems.cpus.place(stack.pid(name), systems.cpus.server)
        ports = [int(stack.service_url(name).rsplit(":", 1)[1]) for name in names]
        pids = [stack.pid(name) for name in names]
        members = place(systems.sala.population(max(1, sockets // room_size), room_size, "t"), room_size, ports)
        for pid in pids:
            wait_idle(pid)
        before = sum(cpu_seconds(pid) for pid in pids)
        connected = ctx.swarm.connect("127.0.0.1", 0, members, f"storm connect {len(members)} on {GATEWAYS}")
        ctx.swarm.quiet(seconds=0.5, timeout=120)
        connect_cpu = sum(cpu_seconds(pid) for pid in pids) - before
        for pid in pids:
            wait_idle(pid)

        start_at = time.monotonic() + START_DELAY_SECONDS
        kill_at = start_at + before_seconds
        chat_until = kill_at + storm_seconds
        sampler = Sampler(ctx, pids[:-1], names[-1], kill_at, chat_until)
        sampler.start()
        result = ctx.swarm.storm(
            f"storm: kill 1 of {GATEWAYS}, {rate:g} msg/s each",
            START_DELAY_SECONDS + before_seconds + storm_seconds,
            tag="storm",
            rate=rate,
            start_at=start_at,
            kill_at=kill_at,
            victim_port=ports[-1],
            chat_until=chat_until,
            give_up_at=chat_until + give_up_seconds,
        )
        sampler.join()
    finally:
        ctx.swarm.disconnect()
        for name in names:
            stack.stop_child(name)
    return _figures(connected.count, len(members), connect_cpu, result, sampler, kill_at, start_at, chat_until) | {
        "gateways": GATEWAYS,
        "handshake_gate": gate,
        "room_size": room_size,
        "rate_per_member": rate,
        "connect_failures": dict(connected.failures),
        "welcome_ms_p99": connected.welcome_ms_p99,
    }


def _figures(
    connected: int,
    sockets: int,
    connect_cpu: float,
    result: dict,
    sampler: Sampler,
    kill_at: float,
    start_at: float,
    chat_until: float,
) -> dict:
    back = sorted(result["back_ns"])
    noticed = sorted(result["noticed_ns"])
    upgraded = sorted(result["upgraded_ns"])
    reconnects = len(back)
    everyone_back = result["back"] == result["members"] and result["dropped"] > 0
    all_back_at = kill_at + back[-1] / 1e9 if back else chat_until
    killed_at = sampler.killed_at or kill_at
    # The survivors' chat, per second, before the kill: what they would have spent anyway.
    chat_from = start_at + 1.0
    gateway_rate = sampler.rate(sampler.gateway_cpu, chat_from, killed_at)
    redis_rate = sampler.rate(sampler.redis_cpu, chat_from, killed_at)
    storm_span = max(0.0, all_back_at - killed_at)
    gateway_extra = sampler.at(sampler.gateway_cpu, all_back_at) - sampler.at(sampler.gateway_cpu, killed_at)
    gateway_extra -= gateway_rate * storm_span
    redis_extra = sampler.at(sampler.redis_cpu, all_back_at) - sampler.at(sampler.redis_cpu, killed_at)
    redis_extra -= redis_rate * storm_span
    samples = result["bystander_samples"]
    kill_ns, back_ns = int(kill_at * 1e9), int(all_back_at * 1e9)
    p50, p99 = percentile(back, 0.5), percentile(back, 0.99)
    return {
        "sockets": connected,
        "asked_for": sockets,
        "connect_cpu_ms_per_socket": round(connect_cpu * 1000 / connected, 3) if connected else None,
        "kill_lag_ms": round((killed_at - kill_at) * 1000, 1),
        "dropped": result["dropped"],
        "reconnected": reconnects,
        "everyone_back": everyone_back,
        "seconds_until_everyone_back": round(back[-1] / 1e9, 2) if everyone_back else None,
        "seconds_until_dropped_p50_max": [
            _seconds(percentile(noticed, 0.5)),
            _seconds(noticed[-1] if noticed else None),
        ],
        # From the kill to the HTTP 101 of the reconnect that succeeded, then to its welcome: waiting to be
        # accepted and upgraded, or for the join (Redis round trips) after it.
        "seconds_until_upgraded_p50_max": [
            _seconds(percentile(upgraded, 0.5)),
            _seconds(upgraded[-1] if upgraded else None),
        ],
        "reconnect_seconds_p50": None if p50 is None else round(p50 / 1e9, 2),
        "reconnect_seconds_p99": None if p99 is None else round(p99 / 1e9, 2),
        "attempts_per_reconnect": {str(k): v for k, v in sorted(result["attempts"].items())},
        "failed_attempts": dict(result["failures"]),
        "gave_up": result["gave_up"],
        "sent": result["sent"],
        "acked": result["acked"],
        "resent_from_outbox": result["resent"],
        "unacked_at_end": result["unacked"],
        "expected_deliveries": result["expected"],
        "lost": result["lost"],
        "duplicated": result["duplicated"],
        "history_truncated": result["truncated"],
        "errors": dict(result["errors"]),
        "closes": {str(code): count for code, count in result["closes"].items()},
        "bystander_latency_ms": {
            "before": latency_window(samples, int(start_at * 1e9) + 1_000_000_000, kill_ns),
            "during": latency_window(samples, kill_ns, back_ns),
            "after": latency_window(samples, back_ns, int(chat_until * 1e9)),
        },
        "survivors_cpu_utilization_before": round(gateway_rate, 3),
        "survivors_cpu_utilization_during": round(sampler.rate(sampler.gateway_cpu, killed_at, all_back_at), 3),
        "survivors_runqueue_wait_before": round(sampler.rate(sampler.gateway_wait, chat_from, killed_at), 3),
        "survivors_runqueue_wait_during": round(sampler.rate(sampler.gateway_wait, killed_at, all_back_at), 3),
        # Shares of one CPU: the load generator's processes and Redis share the other CPU (with the rest).
        "loadgen_cpu_utilization_during": round(sampler.rate(sampler.loadgen_cpu, killed_at, all_back_at), 3),
        "redis_cpu_utilization_during": round(sampler.rate(sampler.redis_cpu, killed_at, all_back_at), 3),
        "gateway_cpu_ms_per_reconnect": round(gateway_extra * 1000 / reconnects, 3) if reconnects else None,
        "redis_cpu_ms_per_reconnect": round(redis_extra * 1000 / reconnects, 3) if reconnects else None,
    }
