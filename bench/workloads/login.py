"""Login: logins/s and latency through the edge and the auth service at the configured argon2 cost.

Login is deliberately slow (argon2id verifies in a worker thread), so it is
measured on its own: for the duration, auth is moved to the server CPU, and
``concurrency`` clients log in back to back as a small set of users.
"""

import asyncio
import time
import uuid

import httpx

from bench.context import Context
from bench.procstat import CpuMeter
from bench.progress import Progress
from bench.stats import latency_summary
from services.auth.settings import AuthSettings

PASSWORD = "bench-password-1"


async def _register(edge_url: str, emails: list[str]) -> None:
    async with httpx.AsyncClient(base_url=edge_url, timeout=30) as client:
        for email in emails:
            response = await client.post(
                "/api/auth/register", json={"email": email, "username": email.split("@")[0], "password": PASSWORD}
            )
            response.raise_for_status()


async def _login_loop(
    edge_url: str, emails: list[str], concurrency: int, seconds: float, progress: Progress
) -> tuple[list[int], dict[str, int]]:
    latencies: list[int] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def tick() -> None:
        while time.monotonic() < deadline:
            progress.update()
            await asyncio.sleep(0.25)

    async with httpx.AsyncClient(base_url=edge_url, timeout=30) as client:

        async def one_client(index: int) -> None:
            while time.monotonic() < deadline:
                began = time.monotonic_ns()
                response = await client.post(
                    "/api/auth/login", json={"email": emails[index % len(emails)], "password": PASSWORD}
                )
                if response.status_code == 200:
                    latencies.append((time.monotonic_ns() - began) // 1000)
                else:
                    failures[str(response.status_code)] = failures.get(str(response.status_code), 0) + 1

        await asyncio.gather(tick(), *(one_client(index) for index in range(concurrency)))
    return latencies, failures


def login(ctx: Context, seconds: float, concurrency: int, users: int) -> dict:
    systems = ctx.systems
    auth = systems.pid("auth")
    settings = AuthSettings(jwt_signing_key_file=systems.stack.signing_key)
    emails = [f"b{uuid.uuid4().hex[:10]}@bench.example.com" for _ in range(users)]
    systems.cpus.place(auth, systems.cpus.server)
    try:
        asyncio.run(_register(systems.stack.edge_url, emails))
        progress = Progress("sala login", seconds)
        meter = CpuMeter({"auth": [auth]}).start()
        latencies, failures = asyncio.run(_login_loop(systems.stack.edge_url, emails, concurrency, seconds, progress))
        usage = meter.stop()["auth"]
    finally:
        systems.cpus.place(auth, systems.cpus.load)
    summary = latency_summary(latencies)
    progress.done(f"{len(latencies) / seconds:.1f} logins/s, p99 {summary['p99']} ms")
    return {
        "target": "sala",
        "seconds": seconds,
        "concurrency": concurrency,
        "argon2": {
            "memory_kib": settings.argon2_memory_kib,
            "time_cost": settings.argon2_time_cost,
            "parallelism": settings.argon2_parallelism,
        },
        "logins": len(latencies),
        "logins_per_second": round(len(latencies) / seconds, 1),
        "latency_ms": summary,
        "failures": failures,
        "auth": usage.as_dict(),
    }
