"""The cuttable TCP proxy, against an echo server on 127.0.0.1."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from tools.tcpproxy import ProxyGroup, TcpProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _roundtrip(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"ping")
        return await asyncio.wait_for(reader.read(4), 2)
    finally:
        writer.close()


async def _refused(port: int) -> bool:
    """The proxy takes the connection and resets it, or answers nothing."""
    try:
        return await _roundtrip(port) == b""
    except ConnectionError:
        return True


async def test_forwards_drops_and_refuses_while_cut_then_forwards_again(echo_port):
    proxy = TcpProxy(echo_port)
    port = await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.read(5), 2) == b"hello"

        proxy.cut(0.5)
        assert await asyncio.wait_for(reader.read(5), 2) == b""  # the open connection was dropped
        writer.close()
        assert await _refused(port)  # a new one is reset at once
        await asyncio.sleep(0.6)
        assert await _roundtrip(port) == b"ping"
    finally:
        await proxy.close()


async def test_group_runs_proxies_on_a_thread_of_their_own(echo_port):
    group = ProxyGroup()
    try:
        port = await asyncio.to_thread(group.add, "gateway0", echo_port)
        assert group.names == {"gateway0"} and group.port("gateway0") == port
        assert await _roundtrip(port) == b"ping"
        await asyncio.to_thread(group.cut, "gateway0", 5)
        assert await _refused(port)
    finally:
        await asyncio.to_thread(group.close)
