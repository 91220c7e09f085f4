"""The HTTP server fastio's client tests run against: httpbin-like endpoints plus what a
public httpbin cannot give — fault injection (hangs, flaky keys, slow bodies) and
accounting (requests in flight, TCP connections open) so tests can prove that a
cancelled or timed-out client really released its requests and sockets.

Run `python tests/httpserver.py --port 0`: it prints `LISTENING <port>` once bound and
serves until SIGTERM/SIGINT, then exits cleanly with code 0. harness.HTTPServer runs it
as a subprocess so nothing a test does to its own event loop can stall the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.parser
import email.policy
import gzip
import hashlib
import json
import random
import signal
import time
import urllib.parse
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict
from yarl import URL

try:
    import brotli as _brotli
except ImportError:  # optional: /brotli answers 501 without it
    _brotli = None
try:
    import zstandard as _zstd
except ImportError:  # optional: /zstd answers 501 without it
    _zstd = None

MIB = 1024 * 1024
MAX_BYTES = 100 * MIB
MAX_DELAY = 60.0
LARGE_BLOCK = 64 * 1024

SLIDESHOW = {
    "slideshow": {
        "author": "Yours Truly",
        "date": "date of publication",
        "title": "Sample Slide Show",
        "slides": [
            {"title": "Wake up to WonderWidgets!", "type": "all"},
            {
                "title": "Overview",
                "type": "all",
                "items": [
                    "Why <em>WonderWidgets</em> are great",
                    "Who <em>buys</em> WonderWidgets",
                ],
            },
        ],
    }
}
"""The fixed document /json serves (httpbin's), so tests can compare it exactly."""


def deterministic_bytes(n: int, seed: int = 0) -> bytes:
    """The body of /bytes/{n}?seed=: tests recompute it to check content, not just length."""
    return random.Random(seed).randbytes(n)


@dataclass
class State:
    """Counters shared by the handlers; one per server process."""

    flaky: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    held_total: int = 0
    open_connections: set[RequestHandler] = field(default_factory=set)
    opened: int = 0
    closed: int = 0
    hung: set[asyncio.Future[None]] = field(default_factory=set)


STATE = web.AppKey("state", State)


# ------------------------------------------------------------------ helpers


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def _multi(pairs: Any) -> dict[str, Any]:
    """A multidict as a dict: one value stays a string, repeated keys become a list."""
    out: dict[str, Any] = {}
    for key in pairs.keys():
        if key in out:
            continue
        values = pairs.getall(key)
        out[key] = values[0] if len(values) == 1 else values
    return out


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _headers(request: web.Request) -> dict[str, str]:
    """Request headers Title-Cased as httpbin does, whatever case the client sent."""
    out: dict[str, str] = {}
    for key, value in request.headers.items():
        name = _title(key)
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def _info(request: web.Request) -> dict[str, Any]:
    return {
        "args": _multi(request.query),
        "headers": _headers(request),
        "origin": request.remote,
        "url": str(request.url),
    }


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be in [{low}, {high}]")
    return value


def _float(request: web.Request, name: str, default: float, high: float) -> float:
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    if not 0 <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be in [0, {high}]")
    return value


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """data/json/form/files as httpbin reports them, plus size and digest for big uploads."""
    form: dict[str, Any] = {}
    files: dict[str, Any] = {}
    data = raw
    mime = content_type.split(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        parsed = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
        data = b""
    elif mime == "multipart/form-data":
        header = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)  # None for a nested multipart
            target = files if part.get_filename() else form
            target[str(name)] = _text_or_data_url(payload if isinstance(payload, bytes) else b"")
        data = b""
    try:
        parsed_json = json.loads(raw) if raw else None
    except ValueError:
        parsed_json = None
    return {
        "data": _text_or_data_url(data),
        "json": parsed_json,
        "form": form,
        "files": files,
        "body_size": len(raw),
        "body_sha256": hashlib.sha256(raw).hexdigest(),
    }


def _text_or_data_url(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return "data:application/octet-stream;base64," + base64.b64encode(payload).decode()


async def _forever(request: web.Request) -> None:
    """Wait until the client goes away (the handler is then cancelled) or the server stops."""
    waiter = asyncio.get_running_loop().create_future()
    hung = request.app[STATE].hung
    hung.add(waiter)
    try:
        await waiter
    finally:
        hung.discard(waiter)


async def _release_hung(app: web.Application) -> None:
    """On shutdown, end hung requests at once instead of waiting out the grace period
    that in-flight requests get (they end with the connection dropped, as on a crash)."""
    for waiter in app[STATE].hung:
        waiter.cancel()


# ---------------------------------------------------------------- handlers

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@routes.get("/get")
async def get(request: web.Request) -> web.Response:
    return _json(_info(request))


@routes.get("/json")
async def json_document(request: web.Request) -> web.Response:
    return _json(SLIDESHOW)


@routes.get("/uuid")
async def new_uuid(request: web.Request) -> web.Response:
    return _json({"uuid": str(uuid.uuid4())})


@routes.get("/headers")
async def headers(request: web.Request) -> web.Response:
    return _json({"headers": _headers(request)})


@routes.route("*", "/anything")
@routes.route("*", "/anything/{tail:.*}")
@routes.post("/post")
@routes.put("/put")
@routes.patch("/patch")
@routes.delete("/delete")
async def echo(request: web.Request) -> web.Response:
    raw = await request.read()
    body = _parse_body(request.headers.get("Content-Type", ""), raw)
    return _json({"method": request.method, **_info(request), **body})


@routes.route("*", "/status/{code}")
async def status(request: web.Request) -> web.Response:
    code = _int(request, "code", 200, 200, 599)
    headers = {}
    if 300 <= code < 400:
        headers["Location"] = "/get"
    if code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="fastio"'
    if code in (204, 304):
        return web.Response(status=code, headers=headers)
    return _json({"status": code}, status=code, headers=headers)


@routes.route("*", "/delay/{seconds}")
async def delay(request: web.Request) -> web.Response:
    seconds = _float(request, "seconds", 0.0, MAX_DELAY)
    await asyncio.sleep(seconds)
    return _json({**_info(request), "delay": seconds})


@routes.get("/redirect/{n}")
async def redirect(request: web.Request) -> web.Response:
    """n chained 302s ending at /get; relative Locations unless ?absolute=true."""
    n = _int(request, "n", 1, 1, 100)
    absolute = request.query.get("absolute", "").lower() == "true"
    target = f"/redirect/{n - 1}" if n > 1 else "/get"
    if n > 1 and request.query_string:
        target += "?" + request.query_string
    if absolute:
        target = str(request.url.join(URL(target)))
    raise web.HTTPFound(target)


@routes.get("/absolute-redirect/{n}")
async def absolute_redirect(request: web.Request) -> web.Response:
    n = _int(request, "n", 1, 1, 100)
    target = f"/absolute-redirect/{n - 1}" if n > 1 else "/get"
    raise web.HTTPFound(str(request.url.with_path(target).with_query(None)))


@routes.route("*", "/redirect-to")
async def redirect_to(request: web.Request) -> web.Response:
    url = request.query.get("url")
    if not url:
        raise web.HTTPBadRequest(text="url is required")
    code = _int(request, "status_code", 302, 300, 399)
    return web.Response(status=code, headers={"Location": url})


@routes.get("/gzip")
async def gzipped(request: web.Request) -> web.Response:
    body = _dumps({"gzipped": True, "method": request.method, **_info(request)}).encode()
    return web.Response(
        body=gzip.compress(body),
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )


@routes.get("/deflate")
async def deflated(request: web.Request) -> web.Response:
    body = _dumps({"deflated": True, "method": request.method, **_info(request)}).encode()
    return web.Response(
        body=zlib.compress(body),
        content_type="application/json",
        headers={"Content-Encoding": "deflate"},
    )


@routes.get("/brotli")
async def brotlied(request: web.Request) -> web.Response:
    if _brotli is None:
        return _json({"error": "brotli module not installed"}, status=501)
    body = _dumps({"brotli": True, "method": request.method, **_info(request)}).encode()
    return web.Response(
        body=_brotli.compress(body),
        content_type="application/json",
        headers={"Content-Encoding": "br"},
    )


@routes.get("/zstd")
async def zstded(request: web.Request) -> web.Response:
    if _zstd is None:
        return _json({"error": "zstandard module not installed"}, status=501)
    body = _dumps({"zstd": True, "method": request.method, **_info(request)}).encode()
    return web.Response(
        body=_zstd.ZstdCompressor().compress(body),
        content_type="application/json",
        headers={"Content-Encoding": "zstd"},
    )


@routes.get("/bytes/{n}")
async def some_bytes(request: web.Request) -> web.Response:
    n = _int(request, "n", 0, 0, MAX_BYTES)
    seed = _int(request, "seed", 0, 0, 2**32)
    return web.Response(body=deterministic_bytes(n, seed), content_type="application/octet-stream")


@routes.get("/stream-bytes/{n}")
async def stream_bytes(request: web.Request) -> web.StreamResponse:
    """The /bytes body again, sent with chunked transfer encoding in chunk_size pieces."""
    n = _int(request, "n", 0, 0, MAX_BYTES)
    seed = _int(request, "seed", 0, 0, 2**32)
    chunk_size = _int(request, "chunk_size", 10240, 1, MAX_BYTES)
    body = deterministic_bytes(n, seed)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, n, chunk_size):
        await response.write(body[start : start + chunk_size])
    await response.write_eof()
    return response


@routes.get("/drip")
async def drip(request: web.Request) -> web.StreamResponse:
    """numbytes '*' spread over duration seconds, after an initial delay: a slow body."""
    duration = _float(request, "duration", 2.0, MAX_DELAY)
    numbytes = _int(request, "numbytes", 10, 1, 10 * MIB)
    code = _int(request, "code", 200, 200, 599)
    await asyncio.sleep(_float(request, "delay", 0.0, MAX_DELAY))
    response = web.StreamResponse(
        status=code,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(numbytes)},
    )
    await response.prepare(request)
    pause = duration / numbytes
    for _ in range(numbytes):
        await asyncio.sleep(pause)
        await response.write(b"*")
    await response.write_eof()
    return response


@routes.get("/hang")
async def hang(request: web.Request) -> web.StreamResponse:
    """Headers and a first chunk, then nothing until the client disconnects."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"partial")
    await _forever(request)
    return response


@routes.get("/hang-headers")
async def hang_headers(request: web.Request) -> web.StreamResponse:
    """Accepts the request and never answers: for connect-ok-but-no-response timeouts."""
    await _forever(request)
    return web.Response()


@routes.route("*", "/response-headers")
async def response_headers(request: web.Request) -> web.Response:
    """Each query pair becomes a response header; repeated keys become repeated headers."""
    out: CIMultiDict[str] = CIMultiDict()
    if "Content-Type" not in CIMultiDict(request.query):
        out["Content-Type"] = "application/json"
    for key, value in request.query.items():
        out.add(key, value)
    return web.Response(body=_dumps(_multi(request.query)).encode(), headers=out)


@routes.route("*", "/retry-after/{seconds}")
async def retry_after(request: web.Request) -> web.Response:
    seconds = _int(request, "seconds", 1, 0, 3600)
    return _json({"status": 429}, status=429, headers={"Retry-After": str(seconds)})


@routes.route("*", "/flaky/reset")
async def flaky_reset(request: web.Request) -> web.Response:
    request.app[STATE].flaky.clear()
    return _json({"reset": True})


@routes.get("/flaky/{key}/count")
async def flaky_count(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    return _json({"key": key, "attempts": request.app[STATE].flaky.get(key, 0)})


@routes.route("*", "/flaky/{key}/{n:\\d+}")
async def flaky(request: web.Request) -> web.Response:
    """Fails the first n requests for key (?status=500, ?retry_after=S), then succeeds."""
    key = request.match_info["key"]
    n = _int(request, "n", 0, 0, 1_000_000)
    code = _int(request, "status", 500, 400, 599)
    counts = request.app[STATE].flaky
    counts[key] = attempt = counts.get(key, 0) + 1
    if attempt > n:
        return _json({"key": key, "attempt": attempt, "status": 200})
    headers = {}
    if "retry_after" in request.query:
        headers["Retry-After"] = str(_int(request, "retry_after", 0, 0, 3600))
    return _json({"key": key, "attempt": attempt, "status": code}, status=code, headers=headers)


@routes.get("/cookies")
async def cookies(request: web.Request) -> web.Response:
    return _json({"cookies": dict(request.cookies)})


@routes.get("/cookies/set")
async def cookies_set(request: web.Request) -> web.Response:
    response = web.HTTPFound("/cookies")
    for name, value in request.query.items():
        response.set_cookie(name, value, path="/")
    return response


@routes.get("/cookies/delete")
async def cookies_delete(request: web.Request) -> web.Response:
    response = web.HTTPFound("/cookies")
    for name in request.query:
        response.del_cookie(name, path="/")
    return response


@routes.get("/basic-auth/{user}/{password}")
async def basic_auth(request: web.Request) -> web.Response:
    user, password = request.match_info["user"], request.match_info["password"]
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return _json(
            {"authenticated": False},
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="fastio"'},
        )
    return _json({"authenticated": True, "user": user})


@routes.get("/large/{megabytes}")
async def large(request: web.Request) -> web.StreamResponse:
    """megabytes MiB streamed in 64 KiB writes (the /bytes/65536 block repeated)."""
    size = _int(request, "megabytes", 1, 0, 1024) * MIB
    block = deterministic_bytes(LARGE_BLOCK)
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    )
    await response.prepare(request)
    for _ in range(size // LARGE_BLOCK):
        await response.write(block)
    await response.write_eof()
    return response


@routes.route("*", "/concurrency/hold")
async def concurrency_hold(request: web.Request) -> web.Response:
    """Holds the request ms milliseconds and counts it as in flight meanwhile."""
    held_ms = _int(request, "ms", 100, 0, int(MAX_DELAY * 1000))
    state = request.app[STATE]
    state.in_flight += 1
    state.held_total += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    at_start = state.in_flight
    try:
        await asyncio.sleep(held_ms / 1000)
    finally:
        state.in_flight -= 1
    return _json({"in_flight_at_start": at_start, "held_ms": held_ms})


def _concurrency(state: State) -> dict[str, int]:
    return {"current": state.in_flight, "max": state.max_in_flight, "total": state.held_total}


@routes.get("/concurrency/stats")
async def concurrency_stats(request: web.Request) -> web.Response:
    return _json(_concurrency(request.app[STATE]))


@routes.route("*", "/concurrency/reset")
async def concurrency_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.max_in_flight = state.in_flight
    state.held_total = 0
    return _json(_concurrency(state))


def _connections(request: web.Request) -> dict[str, int]:
    """`open` leaves out the connection asking, so an idle client set reads 0."""
    state = request.app[STATE]
    return {
        "open": len(state.open_connections - {request.protocol}),
        "opened": state.opened,
        "closed": state.closed,
    }


@routes.get("/connections")
async def connections(request: web.Request) -> web.Response:
    """TCP connection counts; ?max_open=N&timeout=S first waits (up to S) for open <= N,
    since a client's close reaches the server a moment after the client returns."""
    if "max_open" in request.query:
        limit = _int(request, "max_open", 0, 0, 1_000_000)
        deadline = time.monotonic() + _float(request, "timeout", 5.0, MAX_DELAY)
        while _connections(request)["open"] > limit and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    return _json(_connections(request))


@routes.route("*", "/connections/reset")
async def connections_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.opened = len(state.open_connections)
    state.closed = 0
    return _json(_connections(request))


# ------------------------------------------------------------------- server


def make_app() -> web.Application:
    """The application, also usable in-process (e.g. with aiohttp's test utilities)."""
    app = web.Application(client_max_size=512 * MIB)
    app[STATE] = State()
    app.add_routes(routes)
    app.on_shutdown.append(_release_hung)
    return app


def _count_connections(server: web.Server, state: State) -> None:
    """Hook the low-level server's per-connection callbacks to keep the open/closed counts."""
    made, lost = server.connection_made, server.connection_lost

    def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
        state.open_connections.add(handler)
        state.opened += 1
        made(handler, transport)

    def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
        if handler in state.open_connections:
            state.open_connections.discard(handler)
            state.closed += 1
        lost(handler, exc)

    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down without waiting on hung handlers."""
    app = make_app()
    # handler_cancellation: a client that disconnects cancels its handler, so /hang and
    # /concurrency/hold end (and their counts drop) when the client goes away.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    assert runner.server is not None
    _count_connections(runner.server, app[STATE])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        print(f"LISTENING {runner.addresses[0][1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
