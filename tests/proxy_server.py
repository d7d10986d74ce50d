"""A small forward proxy for tests: plain HTTP requests and CONNECT tunnels, Basic auth.

It counts what it carried, so a test can check that every request went through it.
``routes`` maps an authority the client asks for (``127.0.0.1:1234``) to where the
proxy really connects: a test points the tool at an address nothing listens on, so
that a request which bypassed the proxy fails instead of passing unnoticed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

HEAD_LIMIT = 64 * 1024
_HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}


@dataclass
class ProxyStats:
    """What the proxy carried."""

    #: Plain HTTP requests forwarded, as "METHOD absolute-url".
    requests: list[str] = field(default_factory=list)
    #: CONNECT tunnels opened, by the authority asked for.
    tunnels: list[str] = field(default_factory=list)
    #: Requests answered 407 for missing or wrong credentials.
    refused: int = 0


class ProxyServer:
    """Run the proxy on 127.0.0.1 in a thread of its own: ``with ProxyServer() as proxy``."""

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        routes: dict[str, tuple[str, int]] | None = None,
    ) -> None:
        self.credentials = credentials
        self.routes = routes or {}
        self.stats = ProxyStats()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's URL, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    def url_with_credentials(self, user: str, password: str) -> str:
        """The proxy's URL with ``user:password@`` in it."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- one client connection --------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Shutting down. Ending normally keeps asyncio's stream callback from
            # logging the cancellation as an error.
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return whether the client connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        named = {name.strip().lower(): value.strip() for name, value in headers}
        length = int(named.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        if not self._authorised(named.get("proxy-authorization", "")):
            self.stats.refused += 1
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            await writer.drain()
            return True
        if method == "CONNECT":
            await self._tunnel(target, reader, writer)
            return False
        await self._forward(method, target, headers, body, writer)
        return False

    def _authorised(self, header: str) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return header == f"Basic {expected}"

    def _upstream(self, authority: str) -> tuple[str, int]:
        if authority in self.routes:
            return self.routes[authority]
        host, _, port = authority.rpartition(":")
        return host.strip("[]"), int(port)

    async def _tunnel(
        self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.stats.tunnels.append(authority)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream(authority))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.write_eof()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        # A proxied request names the whole URL: http://host:port/path?query.
        scheme, _, rest = target.partition("://")
        authority, slash, path = rest.partition("/")
        if scheme != "http" or not authority:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.stats.requests.append(f"{method} {target}")
        up_reader, up_writer = await asyncio.open_connection(*self._upstream(authority))
        kept = [
            f"{name}:{value}" for name, value in headers if name.strip().lower() not in _HOP_BY_HOP
        ]
        request = "\r\n".join([f"{method} {slash}{path} HTTP/1.1", *kept, "Connection: close"])
        up_writer.write(request.encode("latin-1") + b"\r\n\r\n" + body)
        await up_writer.drain()
        # The origin closes after its answer (Connection: close), and so do we: the
        # answer is passed on byte for byte, its own framing included.
        answer = await up_reader.read()
        up_writer.close()
        writer.write(answer)
        await writer.drain()


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """Hold a port on 127.0.0.1 that refuses connections: bound, never listening."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
