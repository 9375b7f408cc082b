"""A TCP proxy on 127.0.0.1 that can cut its connections: a network partition without root or namespaces.

The soak puts one in front of Redis for each gateway (``Stack(redis_proxies=True)``).
``cut(seconds)`` drops every open connection and refuses new ones (they are
reset at once) until the time is up; then it forwards again. The proxies run
on an event loop of their own, in a daemon thread, so the synchronous dev stack
can own them.
"""

import asyncio
import threading
from concurrent.futures import Future

CHUNK = 65536
CONNECT_TIMEOUT_SECONDS = 5.0


class TcpProxy:
    """Forwards every connection on ``port`` to ``target_port``, both on 127.0.0.1."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.BaseTransport] = set()  # transports of both sides of every connection
        self._cut_until = 0.0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def cut_now(self) -> bool:
        return asyncio.get_running_loop().time() < self._cut_until

    def cut(self, seconds: float) -> None:
        """Drop every connection now and refuse new ones for ``seconds``."""
        self._cut_until = asyncio.get_running_loop().time() + seconds
        for transport in list(self._open):
            transport.abort()
        self._open.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self._open):
                transport.abort()
            self._open.clear()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), CONNECT_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        if self.cut_now:  # cut while connecting
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        pair = {writer.transport, upstream_writer.transport}
        self._open |= pair
        try:
            await asyncio.gather(self._pump(reader, upstream_writer), self._pump(upstream_reader, writer))
        finally:
            self._open -= pair
            for transport in pair:
                transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until its end closes or fails; then close the other end too."""
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()


class ProxyGroup:
    """Named proxies on one event loop in a daemon thread; every method is called from other threads."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxies", daemon=True)
        self._thread.start()
        self._proxies: dict[str, TcpProxy] = {}

    @property
    def names(self) -> set[str]:
        return set(self._proxies)

    def _call(self, coro) -> object:
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    def add(self, name: str, target_port: int) -> int:
        proxy = TcpProxy(target_port)
        self._call(proxy.start())
        self._proxies[name] = proxy
        return proxy.port

    def port(self, name: str) -> int:
        return self._proxies[name].port

    def cut(self, name: str, seconds: float) -> None:
        proxy = self._proxies[name]

        async def cut() -> None:
            proxy.cut(seconds)

        self._call(cut())

    def close(self) -> None:
        for proxy in self._proxies.values():
            self._call(proxy.close())
        self._proxies.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
