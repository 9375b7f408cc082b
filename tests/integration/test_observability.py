"""Operators' view: metrics after some traffic, JSON logs carrying the request id."""

import asyncio
import json

import httpx


async def scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url + "/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_service_exposes_its_metrics_after_traffic(stack, api, new_user, new_room, open_socket):
    user = await new_user()
    await api.post("/api/auth/login", json={"email": user.email, "password": "wrong password"})
    code = await new_room(user)
    socket = await open_socket(user, code, gateway=0)
    await socket.recv_type("welcome")
    await socket.say("metrics")

    auth = await scrape(stack.service_url("auth"))
    assert 'sala_auth_logins_total{outcome="success"}' in auth
    assert 'sala_auth_logins_total{outcome="invalid"}' in auth
    assert "sala_http_request_duration_seconds_bucket" in auth
    assert 'route="/api/auth/login"' in auth

    rooms = await scrape(stack.service_url("rooms"))
    assert 'sala_http_requests_total{method="POST",route="/api/rooms",status="201"}' in rooms

    gateway = await scrape(stack.service_url("gateway0"))
    for name in (
        "sala_gateway_connections",
        "sala_gateway_rooms",
        "sala_gateway_events_fanned_out_total",
        "sala_gateway_redis_reconnects_total",
        "sala_gateway_send_queue_depth",
    ):
        assert name in gateway
    connections = next(line for line in gateway.splitlines() if line.startswith("sala_gateway_connections "))
    assert float(connections.split()[1]) >= 1


async def test_logs_are_json_lines_with_the_edge_request_id(stack, api):
    response = await api.post("/api/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    request_id = response.headers["x-request-id"]
    assert request_id

    def entries() -> list[dict]:
        text = (stack.log_dir / "auth.log").read_text()
        complete = text[: text.rfind("\n") + 1]  # the service may be writing the last line right now
        return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]

    # The access line is written once the response has gone out: give it a moment.
    async with asyncio.timeout(5):
        while not any(entry.get("request_id") == request_id for entry in entries()):
            await asyncio.sleep(0.05)
    assert all({"ts", "level", "service", "msg"} <= set(entry) for entry in entries())
