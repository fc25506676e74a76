"""What ``harness serve`` adds around the application: the listening socket, checked before
anything is printed, an access log line per request, and a bound on answers held for slow
clients.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from harness.errors import HarnessError

DEFAULT_MAX_HELD_BYTES = 1024**3
"""Bytes of answers that may wait for clients to read them, all requests together (1 GiB)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; a :class:`HarnessError` naming the address
    and the fix when the host does not resolve or the port is taken."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise HarnessError(
            f"--host {host} is not an address of this machine ({exc}); use 127.0.0.1 (this "
            "machine only) or 0.0.0.0 (every interface)."
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = (
            "another server listens there; stop it or choose another --port"
            if port and exc.errno in (98, 48)  # EADDRINUSE (Linux, macOS)
            else "choose another --host or --port"
        )
        raise HarnessError(f"cannot listen on {host}:{port} ({exc.strerror}); {hint}.") from None
    sock.set_inheritable(True)
    return sock


class AccessLog:
    """ASGI middleware: one line per HTTP request, as uvicorn and TF Serving log them:
    ``127.0.0.1 "POST /upscale" 200 41.3 ms``."""

    def __init__(self, app: Any, emit: Callable[[str], Any] | None = None) -> None:
        self.app = app
        self.emit = emit or (lambda line: print(line, file=sys.stderr, flush=True))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [0]

        async def logged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            ms = (time.perf_counter() - start) * 1000
            client = (scope.get("client") or ("-",))[0]
            self.emit(
                f'{client} "{scope["method"]} {scope["path"]}" {status[0] or "-"} {ms:.1f} ms'
            )


class HeldBytes:
    """The bytes of answers computed and not yet sent, bounded by ``limit``.

    An answer is reserved before it is returned and released once the server has handed its
    last byte to the connection; a slow client therefore holds its answer's bytes until it
    reads them. An answer that does not fit while others wait gets 503; one answer alone
    always fits, so a limit below the largest answer never refuses every request.
    """

    def __init__(self, limit: int = DEFAULT_MAX_HELD_BYTES) -> None:
        self.limit = int(limit)
        self.held = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.held and self.held + size > self.limit:
                return False
            self.held += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.held -= size


class HeldResponse(Response):
    """A response whose bytes count in :class:`HeldBytes` until they are sent.

    The body goes out in chunks of :attr:`CHUNK` bytes: the server waits for a slow client to
    drain each one, so the answer stays here (counted) rather than in the connection's
    unbounded write buffer, which a body sent in one piece would be copied into at once.
    """

    CHUNK = 256 * 1024

    def __init__(self, body: bytes | bytearray, media_type: str, held: HeldBytes) -> None:
        super().__init__(memoryview(body), media_type=media_type)
        self._held, self._size = held, len(body)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            body = memoryview(self.body)
            for start in range(0, max(len(body), 1), self.CHUNK):
                more = start + self.CHUNK < len(body)
                chunk = bytes(body[start : start + self.CHUNK])
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
        finally:
            self._held.release(self._size)


__all__ = ["DEFAULT_MAX_HELD_BYTES", "AccessLog", "HeldBytes", "HeldResponse", "bind_socket"]
