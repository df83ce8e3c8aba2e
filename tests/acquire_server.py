"""A real HTTP server on 127.0.0.1 for acquisition tests: files with Range/If-Range/ETag,
and faults injected per path (cut connections, 5xx, 429, slow bodies, ...).

Runs uvicorn in a thread of the test process; a raw ASGI app so every fault is explicit.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.e2e.harness import free_port


@dataclass
class Fault:
    kind: str  # cut | status | retry_after | slow | flip | loop | huge | html | change | change_206
    times: int = 1  # how many requests get the fault (then the file is served normally)
    status: int = 500
    delay: float = 0.0


@dataclass
class Served:
    body: bytes
    etag: str = ""
    content_type: str = "audio/mpeg"

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


@dataclass
class FaultServer:
    files: dict[str, Served] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    replacements: dict[str, Served] = field(default_factory=dict)  # for change faults
    robots: str | None = None
    api: dict[str, Any] = field(default_factory=dict)  # JSON answers by path (ia:)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rate_per_second: float = 0.0  # throttle bodies (kill -9 test)
    gzip: bool = False  # compress bodies for clients that accept gzip
    active: int = 0  # file requests being answered now
    max_active: int = 0
    starts: list[float] = field(default_factory=list)  # when each file request came
    ssl: tuple[str, str] | None = None  # (certfile, keyfile): serve HTTPS
    port: int = 0

    @property
    def base(self) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def add(self, path: str, body: bytes, **kw: Any) -> str:
        self.files[path] = Served(body, **kw)
        return self.url(path)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((path, headers))
        self.hits[path] += 1
        if path == "/robots.txt":
            if self.robots is None:
                return await _plain(send, 404, b"no robots")
            return await _plain(send, 200, self.robots.encode(), "text/plain")
        key = path + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        for candidate in (key, path):
            if candidate in self.api:
                import orjson

                data = self.api[candidate]
                if callable(data):
                    data = data(scope["query_string"].decode())
                return await _plain(send, 200, orjson.dumps(data), "application/json")
        served = self.files.get(path)
        if served is None:
            return await _plain(send, 404, b"not found")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.starts.append(time.monotonic())
        try:
            await self._respond(path, served, headers, send)
        finally:
            self.active -= 1

    async def _respond(self, path: str, served: Served, headers: dict[str, str], send: Any) -> None:
        fault = self.faults.get(path)
        active = fault is not None and self.hits[path] <= fault.times
        if fault is not None and fault.kind in ("change", "change_206") and self.hits[path] > 1:
            served = self.replacements[path]
            if fault.kind == "change_206":
                headers.pop("if-range", None)  # a server that ignores If-Range
        if active and fault is not None:
            handled = await self._fault(fault, path, served, send)
            if handled:
                return
        await self._serve(
            served,
            headers,
            send,
            cut=active and fault is not None and fault.kind in ("cut", "change", "change_206"),
            slow=fault.delay if active and fault is not None and fault.kind == "slow" else 0.0,
        )

    async def _fault(self, fault: Fault, path: str, served: Served, send: Any) -> bool:
        if fault.kind == "status":
            await _plain(send, fault.status, b"server error")
            return True
        if fault.kind == "retry_after":
            await _plain(send, fault.status, b"slow down", extra=[(b"retry-after", b"1")])
            return True
        if fault.kind == "loop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 302,
                    "headers": [(b"location", path.encode()), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return True
        if fault.kind == "huge":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", b"2000000000"),
                        (b"content-type", b"audio/mpeg"),
                    ],
                }
            )
            await send(
                {"type": "http.response.body", "body": served.body[:65536], "more_body": True}
            )
            raise ConnectionAbortedError("huge body abandoned")
        if fault.kind == "html":
            body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            await _plain(send, 200, body, served.content_type)
            return True
        if fault.kind == "flip":
            body = bytearray(served.body)
            body[len(body) // 2] ^= 0xFF
            await _plain(
                send, 200, bytes(body), served.content_type, extra=[(b"etag", served.etag.encode())]
            )
            return True
        return False

    async def _serve(
        self, served: Served, headers: dict[str, str], send: Any, *, cut: bool, slow: float
    ) -> None:
        body = served.body
        start = 0
        status = 200
        rng = headers.get("range")
        if_range = headers.get("if-range")
        if rng and (if_range is None or if_range == served.etag):
            start = int(rng.split("=", 1)[1].split("-", 1)[0])
            if start >= len(body):
                await _plain(
                    send, 416, b"", extra=[(b"content-range", f"bytes */{len(body)}".encode())]
                )
                return
            status = 206
        part = body[start:]
        encoding: list[tuple[bytes, bytes]] = []
        if "gzip" in headers.get("accept-encoding", "") and self.gzip:
            import gzip

            part = gzip.compress(part)
            encoding = [(b"content-encoding", b"gzip")]
        out = [
            *encoding,
            (b"content-type", served.content_type.encode()),
            (b"content-length", str(len(part)).encode()),
            (b"etag", served.etag.encode()),
            (b"accept-ranges", b"bytes"),
        ]
        if status == 206:
            out.append((b"content-range", f"bytes {start}-{len(body) - 1}/{len(body)}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        if cut:
            await send(
                {"type": "http.response.body", "body": part[: len(part) // 2], "more_body": True}
            )
            raise ConnectionAbortedError("cut mid-file")
        step = 16384
        for i in range(0, len(part), step):
            if slow and i >= len(part) // 2 > i - step:
                await asyncio.sleep(slow)  # a stall mid-body, longer than the read timeout
            elif self.rate_per_second:
                await asyncio.sleep(step / self.rate_per_second)
            await send(
                {"type": "http.response.body", "body": part[i : i + step], "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})


async def _plain(
    send: Any,
    status: int,
    body: bytes,
    ctype: str = "text/plain",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


class Running:
    def __init__(self, app: FaultServer) -> None:
        app.port = free_port()
        tls = {"ssl_certfile": app.ssl[0], "ssl_keyfile": app.ssl[1]} if app.ssl else {}
        config = uvicorn.Config(
            app, host="127.0.0.1", port=app.port, log_level="critical", lifespan="off", **tls
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
