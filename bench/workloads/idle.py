"""Idle connections: N authenticated sockets held open on one gateway; what each one costs.

Members are spread over rooms of ``room_size`` (one big room would make
every join a broadcast to everybody and measure the join storm instead).
Memory is the gateway's VmRSS after the sockets are open and the joins have
settled, minus before; so it includes everything a socket brings: the
uvicorn and websockets protocol objects, the two tasks and the queue of
ClientConnection, and the buffers of the kernel charged to the process are
not (socket buffers live in kernel memory).
"""

from bench.context import Context
from bench.environment import Target
from bench.procstat import rss_kib, wait_idle
from bench.workloads.fanout import Shape, connect


def idle(ctx: Context, target: Target, connections: int, room_size: int) -> dict:
    shape = Shape(rooms=max(1, connections // room_size), members=room_size, rate=0.0)
    wait_idle(target.pid)
    before = rss_kib(target.pid)
    opened = connect(ctx, target, shape, "i")
    wait_idle(target.pid)
    after = rss_kib(target.pid)
    ctx.swarm.disconnect()
    count = opened["connections"]
    return {
        "target": target.name,
        "connections": count,
        "room_size": room_size,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_kib_per_connection": round((after - before) / count, 2) if count else None,
        "connect_seconds": opened["seconds"],
        "connections_per_second": round(count / opened["seconds"]) if opened["seconds"] else None,
        **{
            key: opened[key] for key in ("failures", "welcome_ms_p50", "welcome_ms_p99", "server_cpu_ms_per_connection")
        },
    }
