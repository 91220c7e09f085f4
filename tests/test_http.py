"""fastio's HTTP client (src/http/): fetch_all, fetch_iter, Client, Response, Retry.

Everything runs against real local servers: the harness's HTTP test server
(tests/httpserver.py, in a subprocess), a TLS server with a throwaway CA made by
trustme, and a small forward proxy, both started here.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import random
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastio
from fastio import _fastio
from httpserver import SLIDESHOW, deterministic_bytes


def sync_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


async def wait_live_tasks(expected: int, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while _fastio._live_tasks() != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return _fastio._live_tasks()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ basics


async def test_get_json_and_response_attributes(http_server: Any) -> None:
    async with fastio.Client() as client:
        r = await client.get(f"{http_server.url}/json")
    assert isinstance(r, fastio.Response)
    assert (r.status, r.status_code, r.reason, r.ok) == (200, 200, "OK", True)
    assert r.json() == SLIDESHOW
    assert json.loads(r.text) == SLIDESHOW and json.loads(r.content) == SLIDESHOW
    assert r.url == f"{http_server.url}/json"
    assert r.encoding == "utf-8"
    assert r.http_version == "HTTP/1.1"
    assert r.elapsed.total_seconds() > 0
    assert repr(r) == "<Response [200 OK]>"


async def test_headers_are_case_insensitive_and_multi_valued(http_server: Any) -> None:
    url = f"{http_server.url}/response-headers"
    r = await fastio.Client().get(url, params=[("X-Multi", "a"), ("X-Multi", "b"), ("X-One", "1")])
    h = r.headers
    assert h["x-one"] == "1" and h["X-ONE"] == "1"
    assert h.get_all("x-multi") == ["a", "b"] and h.getall("X-Multi") == ["a", "b"]
    assert h["x-multi"] == "a"
    assert "X-One" in h and "nope" not in h
    assert h.get("nope") is None and h.get("nope", "d") == "d"
    with pytest.raises(KeyError):
        h["nope"]
    assert ("x-multi", "b") in h.items()


async def test_request_headers_params_and_bodies(http_server: Any) -> None:
    client = fastio.Client(headers={"X-Default": "d"})
    r = await client.get(
        f"{http_server.url}/get", params={"a": "1", "b": ["x", "y"]}, headers={"X-Call": "c"}
    )
    body = r.json()
    assert body["args"] == {"a": "1", "b": ["x", "y"]}
    assert body["headers"]["X-Default"] == "d" and body["headers"]["X-Call"] == "c"
    r = await client.post(f"{http_server.url}/post", json={"k": [1, 2, "é"]})
    assert r.json()["json"] == {"k": [1, 2, "é"]}
    r = await client.put(f"{http_server.url}/put", data={"f": "v"})
    assert r.json()["form"] == {"f": "v"}
    r = await client.patch(f"{http_server.url}/patch", content=b"raw bytes")
    assert r.json()["data"] == "raw bytes"
    r = await client.delete(f"{http_server.url}/delete")
    assert r.json()["method"] == "DELETE"
    r = await client.head(f"{http_server.url}/get")
    assert r.status == 200 and r.content == b""
    r = await client.options(f"{http_server.url}/anything")
    assert r.json()["method"] == "OPTIONS"
    r = await client.request("PROPFIND", f"{http_server.url}/anything")
    assert r.json()["method"] == "PROPFIND"


async def test_base_url(http_server: Any) -> None:
    async with fastio.Client(base_url=f"{http_server.url}/anything") as client:
        r = await client.get("/users/1")
        assert r.json()["url"].endswith("/anything/users/1")
        rs = await client.fetch_all(["a", "b"])
        assert [x.json()["url"].rsplit("/", 1)[1] for x in rs] == ["a", "b"]


@pytest.mark.parametrize("code", [200, 201, 204, 301, 400, 404, 418, 500, 503])
async def test_status_codes_and_raise_for_status(http_server: Any, code: int) -> None:
    client = fastio.Client(follow_redirects=False)
    r = await client.get(f"{http_server.url}/status/{code}")
    assert r.status == code
    assert r.ok == (code < 400)
    if code < 400:
        assert r.raise_for_status() is r
    else:
        with pytest.raises(fastio.HTTPStatusError) as info:
            r.raise_for_status()
        assert info.value.status == code
        assert info.value.response is r
        assert str(code) in str(info.value)


async def test_redirects_and_their_limit(http_server: Any) -> None:
    r = await fastio.Client().get(f"{http_server.url}/redirect/3")
    assert r.status == 200 and r.url == f"{http_server.url}/get"
    with pytest.raises(fastio.TooManyRedirects):
        await fastio.Client(max_redirects=2).get(f"{http_server.url}/redirect/3")
    r = await fastio.Client(follow_redirects=False).get(f"{http_server.url}/redirect/1")
    assert r.status == 302 and r.headers["location"] == "/get"


async def test_redirects_keep_credentials_on_the_same_host_only(http_server: Any) -> None:
    # reqwest is patched to skip its per-request URL parses before the first
    # redirect (vendor/reqwest); after one, credentials must still be dropped.
    u = http_server.url
    other = u.replace("127.0.0.1", "localhost")
    client = fastio.Client(headers={"Authorization": "Bearer s3cret"})
    same = await client.get(f"{u}/redirect-to", params={"url": f"{u}/headers"})
    assert same.json()["headers"].get("Authorization") == "Bearer s3cret"
    assert same.url == f"{u}/headers"
    cross = await client.get(f"{u}/redirect-to", params={"url": f"{other}/headers"})
    assert "Authorization" not in cross.json()["headers"]
    assert cross.url == f"{other}/headers"
    plain = await client.get(f"{u}/headers")
    assert plain.url == f"{u}/headers"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "brotli", "zstd"])
async def test_compressed_bodies_are_decoded(http_server: Any, encoding: str) -> None:
    r = await fastio.Client().get(f"{http_server.url}/{encoding}")
    assert r.status == 200
    key = {"gzip": "gzipped", "deflate": "deflated", "brotli": "brotli", "zstd": "zstd"}
    assert r.json()[key[encoding]]


async def test_accept_encoding_offers_zstd(http_server: Any) -> None:
    r = await fastio.Client().get(f"{http_server.url}/headers")
    offered = {e.strip() for e in r.json()["headers"]["Accept-Encoding"].split(",")}
    assert {"gzip", "deflate", "br", "zstd"} <= offered


async def test_chunked_and_large_bodies(http_server: Any) -> None:
    client = fastio.Client()
    r = await client.get(f"{http_server.url}/stream-bytes/300000?seed=7&chunk_size=1000")
    assert r.content == deterministic_bytes(300000, 7)
    r = await client.get(f"{http_server.url}/large/20")
    assert len(r.content) == 20 * 1024 * 1024


async def test_large_bodies_are_read_into_one_shared_bytes(http_server: Any) -> None:
    # A large body of known length goes straight into the `bytes` that
    # .content returns: cache hits share that object instead of copying it.
    n = 3 * 1024 * 1024
    client = fastio.Client(cache_ttl=30)
    url = f"{http_server.url}/bytes/{n}?seed=5"
    a = await client.get(url)
    b = await client.get(url)
    assert b.from_cache
    assert a.content == deterministic_bytes(n, 5) and len(a) == n
    assert b.content is a.content
    assert a.text == deterministic_bytes(n, 5).decode("utf-8", "replace")
    sizes = [131071, 131072, 200_000, 1_000_001]  # both sides of the threshold
    rs = await fastio.fetch_all([f"{http_server.url}/bytes/{k}?seed={k}" for k in sizes])
    assert [r.content for r in rs] == [deterministic_bytes(k, k) for k in sizes]
    capped = fastio.Client(max_body_size=200_000)
    assert len((await capped.get(f"{http_server.url}/bytes/200000")).content) == 200_000
    with pytest.raises(fastio.BodyTooLarge):
        await capped.get(f"{http_server.url}/bytes/200001")


async def test_fetch_all_repeated_urls_keep_their_own_results(http_server: Any) -> None:
    # fetch_all parses a URL repeated back to back once; each item still gets
    # the call's params and its own response, and bad items stay per item.
    u = http_server.url
    get = f"{u}/get"
    items = [
        get,
        get,
        "not a url",
        "not a url",
        f"{u}/uuid",
        get,
        "".join(["ht", "tp://", get[7:]]),
    ]
    rs = await fastio.fetch_all(items, params={"k": "v"})
    assert [type(r).__name__ for r in rs] == [
        "Response",
        "Response",
        "InvalidURL",
        "InvalidURL",
        "Response",
        "Response",
        "Response",
    ]
    for i in (0, 1, 5, 6):
        assert rs[i].json()["args"] == {"k": "v"} and rs[i].url == f"{get}?k=v"
    uuids = await fastio.fetch_all([f"{u}/uuid"] * 20)
    assert len({r.json()["uuid"] for r in uuids}) == 20


async def test_max_body_size(http_server: Any) -> None:
    client = fastio.Client(max_body_size=1000)
    assert len((await client.get(f"{http_server.url}/bytes/1000")).content) == 1000
    with pytest.raises(fastio.BodyTooLarge):
        await client.get(f"{http_server.url}/bytes/1001")  # Content-Length says so
    with pytest.raises(fastio.BodyTooLarge):
        await client.get(f"{http_server.url}/stream-bytes/5000")  # chunked: counted
    rs = await client.fetch_all([f"{http_server.url}/bytes/10", f"{http_server.url}/bytes/5000"])
    assert rs[0].status == 200 and isinstance(rs[1], fastio.BodyTooLarge)


async def test_text_uses_the_charset(http_server: Any) -> None:
    url = f"{http_server.url}/response-headers"
    r = await fastio.Client().get(url, params={"Content-Type": "text/plain; charset=latin-1"})
    assert r.encoding == "latin-1"
    assert "Content-Type" in r.text


# ------------------------------------------------------------------ errors


async def test_connection_refused(http_server: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(fastio.ConnectError) as info:
        await fastio.Client().get(url)
    assert isinstance(info.value, builtins.ConnectionError)
    assert isinstance(info.value, fastio.ConnectionError)
    assert isinstance(info.value, fastio.RequestError)


async def test_read_timeout_is_a_builtin_timeout(http_server: Any) -> None:
    start = time.monotonic()
    with pytest.raises(fastio.ReadTimeout) as info:
        await fastio.Client(timeout=0.3).get(f"{http_server.url}/hang-headers")
    assert time.monotonic() - start < 5
    assert isinstance(info.value, builtins.TimeoutError)
    assert isinstance(info.value, asyncio.TimeoutError)
    assert isinstance(info.value, fastio.HTTPTimeoutError)
    # A per-request timeout overrides the client's; a body that stalls times out too.
    with pytest.raises(fastio.HTTPTimeoutError):
        await fastio.Client(timeout=None).get(f"{http_server.url}/hang", timeout=0.3)


async def test_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # A listener that never accepts, its backlog filled: further SYNs go unanswered.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(fastio.ConnectTimeout) as info:
            await fastio.Client(connect_timeout=0.3).get(f"http://127.0.0.1:{port}/")
        assert time.monotonic() - start < 3
        assert isinstance(info.value, builtins.TimeoutError)
        assert isinstance(info.value, fastio.HTTPTimeoutError)
        # The lean HTTP/1.1 path words it as reqwest does. reqwest has two
        # wordings: its own connect timer and hyper-util's share a deadline,
        # and whichever fires first names the error.
        with pytest.raises(fastio.ConnectTimeout) as plain:
            await reqwest_client(monkeypatch, connect_timeout=0.3).get(f"http://127.0.0.1:{port}/")

        def wording(e: BaseException) -> str:
            return str(e).replace("tcp connect error: deadline has elapsed", "operation timed out")

        assert wording(info.value) == wording(plain.value)
    finally:
        for c in fillers:
            c.close()
        server.close()


async def test_total_timeout_of_a_batch(http_server: Any) -> None:
    urls = [f"{http_server.url}/delay/0"] * 3 + [f"{http_server.url}/hang-headers"] * 2
    start = time.monotonic()
    rs = await fastio.fetch_all(urls, total_timeout=0.5, timeout=None)
    assert time.monotonic() - start < 5
    assert all(r.status == 200 for r in rs[:3])
    assert all(isinstance(r, fastio.HTTPTimeoutError) for r in rs[3:])
    assert all(isinstance(r, builtins.TimeoutError) for r in rs[3:])


@pytest.mark.parametrize(
    ("url", "exc"),
    [
        ("not a url", fastio.InvalidURL),
        ("ftp://example.com/x", fastio.InvalidURL),
        ("http://", fastio.InvalidURL),
    ],
)
async def test_bad_urls(url: str, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        await fastio.Client().get(url)
    assert isinstance(info.value, ValueError)


async def test_bad_arguments_raise_clear_errors(http_server: Any) -> None:
    client = fastio.Client()
    with pytest.raises(TypeError, match="not JSON serialisable"):
        await client.post(f"{http_server.url}/post", json={"x": object()})
    with pytest.raises(ValueError, match="timeout"):
        await client.get(f"{http_server.url}/get", timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        fastio.Client(timeout=-1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        await client.get(f"{http_server.url}/get", nope=1)
    with pytest.raises(ValueError, match="at most one"):
        await client.post(f"{http_server.url}/post", json={}, content=b"x")
    with pytest.raises(ValueError, match="concurrency"):
        await fastio.fetch_all([], concurrency=0)


async def test_secrets_never_leak(http_server: Any) -> None:
    port = free_port()
    with pytest.raises(fastio.ConnectError) as info:
        await fastio.Client().get(f"http://user:hunter2@127.0.0.1:{port}/")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(fastio.InvalidURL) as info2:
        await fastio.Client().get("ftp://user:hunter2@example.com/")
    assert "hunter2" not in str(info2.value)
    req = fastio.Request("GET", "http://u:hunter2@example.com/")
    assert "hunter2" not in repr(req)
    r = await fastio.Client().get(
        f"{http_server.url}/response-headers", params={"Set-Cookie": "session=hunter2"}
    )
    assert "hunter2" not in repr(r.headers)
    client = fastio.Client(base_url="http://u:hunter2@example.com/")
    assert "hunter2" not in repr(client)


async def test_closed_client() -> None:
    client = fastio.Client()
    await client.close()
    assert client.is_closed
    with pytest.raises(fastio.InterfaceError):
        await client.get("http://127.0.0.1:1/")


# --------------------------------------------------------------- fetch_all


async def test_fetch_all_mixed_results_in_order(http_server: Any) -> None:
    u = http_server.url
    rs = await fastio.fetch_all(
        [
            f"{u}/get",
            f"{u}/status/404",
            f"http://127.0.0.1:{free_port()}/",
            "not a url",
            fastio.Request("POST", f"{u}/post", json={"a": 1}),
            {"method": "PUT", "url": f"{u}/put", "data": {"b": "2"}},
            {"url": f"{u}/post", "method": "POST", "json": {"x": object()}},
            42,
        ]
    )
    assert len(rs) == 8
    assert rs[0].status == 200 and rs[1].status == 404
    assert isinstance(rs[2], fastio.ConnectError)
    assert isinstance(rs[3], fastio.InvalidURL)
    assert rs[4].json()["json"] == {"a": 1}
    assert rs[5].json()["form"] == {"b": "2"}
    assert isinstance(rs[6], TypeError)
    assert isinstance(rs[7], TypeError)


async def test_fetch_all_preserves_order_under_random_delays(http_server: Any) -> None:
    delays = [random.choice([0, 0.05, 0.1, 0.2]) for _ in range(60)]
    urls = [f"{http_server.url}/anything/{i}?d={d}" for i, d in enumerate(delays)]
    urls = [f"{http_server.url}/delay/{d}?i={i}" for i, d in enumerate(delays)]
    rs = await fastio.fetch_all(urls, concurrency=20)
    assert [int(r.json()["args"]["i"]) for r in rs] == list(range(60))


async def test_fetch_all_respects_concurrency(http_server: Any) -> None:
    sync_get(f"{http_server.url}/concurrency/reset")
    urls = [f"{http_server.url}/concurrency/hold?ms=50"] * 40
    rs = await fastio.fetch_all(urls, concurrency=7)
    assert all(r.status == 200 for r in rs)
    stats = sync_get(f"{http_server.url}/concurrency/stats")
    assert stats["max"] == 7 and stats["total"] == 40


async def test_client_connection_limits(http_server: Any) -> None:
    sync_get(f"{http_server.url}/concurrency/reset")
    client = fastio.Client(max_connections_per_host=3)
    rs = await asyncio.gather(
        *(client.get(f"{http_server.url}/concurrency/hold?ms=50") for _ in range(12))
    )
    assert all(r.status == 200 for r in rs)
    assert sync_get(f"{http_server.url}/concurrency/stats")["max"] == 3
    sync_get(f"{http_server.url}/concurrency/reset")
    client = fastio.Client(max_connections=2)
    await client.fetch_all([f"{http_server.url}/concurrency/hold?ms=50"] * 8, concurrency=8)
    assert sync_get(f"{http_server.url}/concurrency/stats")["max"] == 2


def open_connections(url: str) -> int:
    return int(sync_get(f"{url}/connections")["open"])


def wait_open_at_most(url: str, limit: int) -> int:
    """Open connections at the server once they drop to `limit` (or after 5 s)."""
    return int(sync_get(f"{url}/connections?max_open={limit}&timeout=5")["open"])


async def test_fetch_all_return_exceptions_false_raises_first_error(http_server: Any) -> None:
    u = http_server.url
    base = await wait_live_tasks(0)
    conns = open_connections(u)
    with pytest.raises(fastio.ConnectError):
        await fastio.Client().fetch_all(
            [f"http://127.0.0.1:{free_port()}/"] + [f"{u}/hang-headers"] * 5,
            return_exceptions=False,
        )
    assert await wait_live_tasks(base) == base
    # The hung requests were cancelled and their sockets closed.
    assert wait_open_at_most(u, conns) <= conns
    with pytest.raises(fastio.InvalidURL):
        await fastio.fetch_all([f"{u}/get", "bad"], return_exceptions=False)


async def test_cancelling_fetch_all_stops_everything(http_server: Any) -> None:
    u = http_server.url
    conns = open_connections(u)
    base = await wait_live_tasks(0)
    client = fastio.Client()  # its own pool: no idle connection to reuse
    task = asyncio.create_task(client.fetch_all([f"{u}/hang-headers"] * 20, concurrency=10))
    deadline = time.monotonic() + 5
    while open_connections(u) < conns + 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert open_connections(u) == conns + 10  # exactly `concurrency` in flight
    assert _fastio._live_tasks() == base + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_live_tasks(base) == base
    assert wait_open_at_most(u, conns) <= conns


async def test_wait_for_on_fetch_all(http_server: Any) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fastio.fetch_all([f"{http_server.url}/hang-headers"]), 0.2)


async def test_fetch_all_progress(http_server: Any) -> None:
    calls: list[tuple[int, int]] = []
    urls = [f"{http_server.url}/delay/0.05"] * 30
    await fastio.fetch_all(urls, concurrency=5, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (30, 30)
    assert all(t == 30 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


async def test_fetch_all_progress_bar(http_server: Any, capfd: pytest.CaptureFixture[str]) -> None:
    await fastio.fetch_all([f"{http_server.url}/get"] * 3, progress=True)
    assert "3/3" in capfd.readouterr().err


async def test_fetch_all_shared_headers_and_params(http_server: Any) -> None:
    rs = await fastio.fetch_all(
        [f"{http_server.url}/get"] * 2, headers={"X-All": "1"}, params={"q": "z"}
    )
    assert all(r.json()["headers"]["X-All"] == "1" for r in rs)
    assert all(r.json()["args"] == {"q": "z"} for r in rs)


# ------------------------------------------------------------------- retry


async def test_retry_on_status(http_server: Any) -> None:
    u = http_server.url
    sync_get(f"{u}/flaky/reset")
    retry = fastio.Retry(attempts=3, backoff=0.01)
    rs = await fastio.fetch_all(
        [f"{u}/flaky/a/2", f"{u}/flaky/b/5", f"{u}/status/404"], retry=retry
    )
    assert rs[0].status == 200 and rs[0].json()["attempt"] == 3
    assert rs[1].status == 500 and sync_get(f"{u}/flaky/b/count")["attempts"] == 3
    assert rs[2].status == 404
    # POST is not idempotent: not retried by default, retried when allowed.
    client = fastio.Client(retry=retry)
    assert (await client.post(f"{u}/flaky/c/1")).status == 500
    client = fastio.Client(retry=fastio.Retry(attempts=2, backoff=0.01, methods=["POST"]))
    assert (await client.post(f"{u}/flaky/d/1")).status == 200


async def test_retry_honours_retry_after(http_server: Any) -> None:
    u = http_server.url
    sync_get(f"{u}/flaky/reset")
    client = fastio.Client(retry=fastio.Retry(attempts=2, backoff=0.0, jitter=False))
    start = time.monotonic()
    r = await client.get(f"{u}/flaky/ra/1?status=429&retry_after=1")
    assert r.status == 200
    assert time.monotonic() - start >= 0.95


async def test_retry_on_connection_errors_and_deadline(http_server: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    start = time.monotonic()
    retry = fastio.Retry(attempts=4, backoff=0.1, jitter=False)
    with pytest.raises(fastio.ConnectError):
        await fastio.Client(retry=retry).get(url)
    assert time.monotonic() - start >= 0.1 + 0.2 + 0.4 - 0.05
    start = time.monotonic()
    retry = fastio.Retry(attempts=10, backoff=0.2, jitter=False, deadline=0.3)
    with pytest.raises(fastio.ConnectError):
        await fastio.Client(retry=retry).get(url)
    assert time.monotonic() - start < 1.0


def test_retry_policy_object() -> None:
    r = fastio.Retry(attempts=5, backoff=0.5, factor=3, max_backoff=2, jitter=False)
    assert [r.delay(a) for a in (1, 2, 3)] == [0.5, 1.5, 2.0]
    assert r.delay(1, retry_after=7) == 7
    assert r.methods == ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]
    assert fastio.ConnectionError in r.on_errors
    with pytest.raises(ValueError):
        fastio.Retry(attempts=0)
    with pytest.raises(ValueError):
        fastio.Retry(backoff=-1)


# ------------------------------------------------------------ cache, stream


async def test_ttl_cache(http_server: Any) -> None:
    client = fastio.Client(cache_ttl=0.5)
    url = f"{http_server.url}/uuid"
    a = await client.get(url)
    b = await client.get(url)
    assert not a.from_cache and b.from_cache
    assert a.json() == b.json()
    post = await client.post(f"{http_server.url}/post")
    assert not post.from_cache
    await asyncio.sleep(0.6)
    c = await client.get(url)
    assert not c.from_cache and c.json() != a.json()
    nocache = fastio.Client()
    assert (await nocache.get(url)).json() != (await nocache.get(url)).json()


async def test_stream_and_download(http_server: Any, tmp_path: Path) -> None:
    client = fastio.Client()
    chunks = []
    async with client.stream("GET", f"{http_server.url}/stream-bytes/100000?seed=3") as r:
        assert r.status == 200
        async for chunk in r.aiter_bytes():
            chunks.append(chunk)
    assert b"".join(chunks) == deterministic_bytes(100000, 3)
    async with client.stream("GET", f"{http_server.url}/bytes/5000") as r:
        assert await r.aread() == deterministic_bytes(5000)
    n = await client.download(f"{http_server.url}/large/3", tmp_path / "f.bin")
    assert n == 3 * 1024 * 1024 == (tmp_path / "f.bin").stat().st_size
    with pytest.raises(fastio.HTTPStatusError):
        await client.download(f"{http_server.url}/status/404", tmp_path / "g.bin")


async def test_breaking_out_of_a_stream_closes_the_connection(http_server: Any) -> None:
    u = http_server.url
    conns = open_connections(u)
    client = fastio.Client()
    async with client.stream("GET", f"{u}/hang") as r:
        async for chunk in r.aiter_bytes():
            assert chunk == b"partial"
            break
    assert wait_open_at_most(u, conns) <= conns


# --------------------------------------------------------------- fetch_iter


async def test_fetch_iter_yields_every_index_once(http_server: Any) -> None:
    delays = [random.choice([0, 0.02, 0.05]) for _ in range(50)]
    urls = [f"{http_server.url}/delay/{d}?i={i}" for i, d in enumerate(delays)]
    seen = {}
    async for i, r in fastio.fetch_iter(urls, concurrency=10):
        seen[i] = int(r.json()["args"]["i"])
    assert seen == {i: i for i in range(50)}


async def test_fetch_iter_errors_and_early_exit(http_server: Any) -> None:
    u = http_server.url
    got = [x async for x in fastio.fetch_iter(["bad url", f"{u}/get"], concurrency=1)]
    assert sorted(i for i, _ in got) == [0, 1]
    assert isinstance(dict(got)[0], fastio.InvalidURL)
    conns = open_connections(u)
    base = await wait_live_tasks(0)
    client = fastio.Client()
    it = client.fetch_iter([f"{u}/get"] + [f"{u}/hang-headers"] * 5, concurrency=6)
    async for _i, r in it:
        assert r.status == 200
        break
    await it.aclose()
    assert await wait_live_tasks(base) == base
    await client.close()  # the /get connection, idle in the pool, closes with it
    assert wait_open_at_most(u, conns) <= conns


async def test_fetch_iter_return_exceptions_false(http_server: Any) -> None:
    u = http_server.url
    base = await wait_live_tasks(0)
    it = fastio.fetch_iter(["bad url"] + [f"{u}/hang-headers"] * 3, return_exceptions=False)
    with pytest.raises(fastio.InvalidURL):
        async for _ in it:
            pass
    assert [x async for x in it] == []  # over after the error
    assert await wait_live_tasks(base) == base  # the hung requests were cancelled


async def test_fetch_iter_memory_is_bounded(http_server: Any) -> None:
    # A slow consumer: the producer must wait (channel full), not fetch ahead.
    sync_get(f"{http_server.url}/concurrency/reset")
    url = f"{http_server.url}/concurrency/hold?ms=0"
    it = fastio.fetch_iter([url] * 2000, concurrency=4)
    count = 0
    async for _ in it:
        count += 1
        if count == 5:
            await asyncio.sleep(0.5)
            fetched = sync_get(f"{http_server.url}/concurrency/stats")["total"]
            assert fetched < 5 + 4 + 4 + 1100, fetched  # in flight + channel + one batch
    assert count == 2000


# --------------------------------------------------------------- TLS, proxy


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    trustme = pytest.importorskip("trustme")
    from aiohttp import web

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/hello", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
        return runner

    runner = loop.run_until_complete(start())
    thread = threading.Thread(target=lambda: (ready.set(), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait()
    yield f"https://localhost:{port}", str(ca_file)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


async def test_tls_verification(tls_server: tuple[str, str]) -> None:
    url, ca_file = tls_server
    with pytest.raises(fastio.TLSError) as info:
        await fastio.Client().get(f"{url}/hello")
    assert isinstance(info.value, fastio.ConnectError)
    r = await fastio.Client(ca_file=ca_file).get(f"{url}/hello")
    assert r.json() == {"tls": True}
    r = await fastio.Client(verify=False).get(f"{url}/hello")
    assert r.status == 200
    rs = await fastio.fetch_all([f"{url}/hello"])
    assert isinstance(rs[0], fastio.TLSError)


async def _proxy_handler(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[str]
) -> None:
    """A minimal HTTP/1.1 forward proxy for absolute-form requests (no CONNECT)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        seen.append(f"{method} {target}")
        rest = target.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        up_r, up_w = await asyncio.open_connection(host, int(port or 80))
        headers = [h for h in lines[1:] if h and not h.lower().startswith("proxy-")]
        headers = [h for h in headers if not h.lower().startswith("connection:")]
        up_w.write(
            f"{method} /{path} {version}\r\n".encode()
            + "\r\n".join([*headers, "Connection: close", "", ""]).encode()
        )
        await up_w.drain()
        response = await up_r.read()
        up_w.close()
        response = response.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
        writer.write(response)
        await writer.drain()
    finally:
        writer.close()


async def test_proxy(http_server: Any) -> None:
    seen: list[str] = []
    server = await asyncio.start_server(lambda r, w: _proxy_handler(r, w, seen), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = fastio.Client(proxy=f"http://127.0.0.1:{port}")
        r = await client.get(f"{http_server.url}/get?via=proxy")
        assert r.status == 200 and r.json()["args"] == {"via": "proxy"}
        assert seen == [f"GET {http_server.url}/get?via=proxy"]
    finally:
        server.close()
        await server.wait_closed()


# -------------------------------------------------------------------- misc


async def test_many_requests_reuse_connections(http_server: Any) -> None:
    u = http_server.url
    client = fastio.Client()
    sync_get(f"{u}/connections/reset")
    rs = await client.fetch_all([f"{u}/get"] * 200, concurrency=10)
    assert all(r.status == 200 for r in rs)
    assert sync_get(f"{u}/connections")["opened"] <= 40  # pooled, not one per request


def test_module_level_client_survives_fork(http_server: Any) -> None:
    import os

    from conftest import run

    assert run(fastio.fetch_all([f"{http_server.url}/get"]))[0].status == 200
    pid = os.fork()
    if pid == 0:  # child: a fresh runtime and default client
        code = 1
        try:
            rs = run(fastio.fetch_all([f"{http_server.url}/get"]))
            code = 0 if rs[0].status == 200 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture(scope="module")
def h2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """hypercorn (HTTP/2 over TLS via ALPN) with a trustme certificate, in a thread."""
    trustme = pytest.importorskip("trustme")
    pytest.importorskip("hypercorn")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    tmp = tmp_path_factory.mktemp("h2")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps({"http_version": scope["http_version"]}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = str(tmp / "cert.pem")
    config.keyfile = str(tmp / "key.pem")
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"https://localhost:{port}", str(tmp / "ca.pem")
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


async def test_http2_when_the_server_supports_it(h2_server: tuple[str, str]) -> None:
    url, ca_file = h2_server
    client = fastio.Client(http2=True, ca_file=ca_file)
    r = await client.get(f"{url}/")
    assert r.http_version == "HTTP/2" and r.json() == {"http_version": "2"}
    rs = await client.fetch_all([f"{url}/x"] * 50, concurrency=50)
    assert all(x.http_version == "HTTP/2" for x in rs)
    r = await fastio.Client(ca_file=ca_file).get(f"{url}/")  # http2=False: HTTP/1.1 only
    assert r.http_version == "HTTP/1.1" and r.json() == {"http_version": "1.1"}


# ------------------------------------------------- the lean HTTP/1.1 path
#
# Plain http:// GETs take fastio's own HTTP/1.1 client (src/http/h1.rs)
# instead of reqwest. Each behaviour below is checked against reqwest's:
# a client built with FASTIO_HTTP_LEAN=0 always takes reqwest.


def lean_stats() -> tuple[int, int]:
    """(requests that took the lean path, of those handed to reqwest)."""
    taken, handed = _fastio._http_lean_stats()
    return int(taken), int(handed)


def reqwest_client(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> fastio.Client:
    with monkeypatch.context() as m:
        m.setenv("FASTIO_HTTP_LEAN", "0")
        return fastio.Client(**kw)


class CannedServer:
    """A raw HTTP server on 127.0.0.1 for what the harness server cannot
    send: it answers each request with fixed bytes, then keeps the
    connection (`close=False`) or closes it. It records each raw request
    head and counts connections. Stops when the `with` block ends."""

    def __init__(self, response: bytes, *, close: bool = True, stall: bool = False) -> None:
        self.response = response
        self.close = close
        self.stall = stall  # send the response, then neither more nor close
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> CannedServer:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(5)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        data = b""
        with conn:
            while not self.stopped.is_set():
                try:
                    got = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not got:
                    return
                data += got
                while b"\r\n\r\n" in data:
                    head, data = data.split(b"\r\n\r\n", 1)
                    self.requests.append(head)
                    conn.sendall(self.response)
                    if self.stall:
                        self.stopped.wait(10)
                        return
                    if self.close:
                        conn.shutdown(socket.SHUT_WR)
                        return


def outcome(r: Any) -> Any:
    """What Python sees of a result: every Response field, or the error."""
    if isinstance(r, BaseException):
        return (type(r).__name__, str(r))
    return (
        r.status,
        r.reason,
        r.ok,
        r.http_version,
        r.url,
        list(r.headers.items()),
        r.content,
    )


LARGE = bytes(range(256)) * 1171 + b"x" * 224  # 300,000 bytes
CANNED = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    ),
    "until-eof": b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\n\r\nbody until the end",
    "connection-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "http-1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "no-content": b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    "odd-status": b"HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n",
    "redirect": b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
    # Handed to reqwest: a 1xx, two lengths, a body that does not decode,
    # a head hyper rejects.
    "continue": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "bad-gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
    "garbage": b"garbage\r\n\r\n",
    # Failures the lean path reports itself.
    "no-response": b"",
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
    "short-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    "bad-chunk-end": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    "bad-trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nno colon\r\n\r\n"
    ),
    "partial-head": b"HTTP/1.1 200 OK\r\nContent-Le",
    # Bodies of known length from 128 KiB up are read from the socket
    # straight into the `bytes` object: whole, and cut short.
    "large-body": b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + LARGE,
    "short-large-body": b"HTTP/1.1 200 OK\r\nContent-Length: 300001\r\n\r\n" + LARGE,
}
HANDED_OVER = {"continue", "two-lengths", "bad-gzip", "garbage"}


@pytest.mark.parametrize("case", sorted(CANNED))
async def test_lean_path_answers_as_reqwest_does(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    seen = []
    for lean in (True, False):
        client = (
            fastio.Client(follow_redirects=False)
            if lean
            else reqwest_client(monkeypatch, follow_redirects=False)
        )
        with CannedServer(CANNED[case]) as server:
            before = lean_stats()
            rs = await client.fetch_all([f"{server.url}/p?q=1"], timeout=5)
            after = lean_stats()
            # The same result, and the same request on the wire, byte for
            # byte (but for the servers' ports).
            seen.append(repr((outcome(rs[0]), server.requests[-1])).replace(server.url[7:], "H"))
        if lean:
            assert after[0] == before[0] + 1
            assert after[1] == before[1] + (case in HANDED_OVER)
    assert seen[0] == seen[1]


async def test_lean_path_request_headers_match_reqwest(monkeypatch: pytest.MonkeyPatch) -> None:
    kw: dict[str, Any] = {"headers": {"X-Default": "d", "Accept": "text/plain"}}
    requests = []
    for client in (fastio.Client(**kw), reqwest_client(monkeypatch, **kw)):
        # Connections kept open: one closed right after its response may be
        # picked for the second request before its FIN arrives, which
        # reqwest reports as an error (a race, not what is compared here).
        with CannedServer(CANNED["content-length"], close=False) as server:
            item = fastio.Request(
                "GET",
                f"{server.url}/p",
                headers=[("X-One", "1"), ("x-one", "2"), ("Accept-Encoding", "gzip")],
                params={"a": "b c"},
            )
            rs = await client.fetch_all([item, f"{server.url}/q?x=%2F"])
            assert all(r.status == 200 for r in rs)
            requests.append(repr(sorted(server.requests)).replace(server.url[7:], "H"))
    assert requests[0] == requests[1]


async def test_lean_path_reuses_connections() -> None:
    # Its own server: the harness's counts every test's connections.
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with CannedServer(response, close=False) as server:
        client = fastio.Client()
        before = lean_stats()
        rs = await client.fetch_all([f"{server.url}/?i={i}" for i in range(500)], concurrency=10)
        assert all(r.content == b"ok" for r in rs)
        assert lean_stats() == (before[0] + 500, before[1])
        assert len(server.requests) == 500
        assert server.connections <= 10
        rs = await client.fetch_all([f"{server.url}/"] * 100, concurrency=10)
        assert all(r.content == b"ok" for r in rs)
        assert server.connections <= 10


async def test_lean_path_survives_servers_closing_idle_connections() -> None:
    # The server closes each connection right after its response, without
    # saying so: a request sent on a kept connection is sent again on a new one.
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with CannedServer(response, close=True) as server:
        client = fastio.Client()
        before = lean_stats()
        for _ in range(20):
            r = await client.get(f"{server.url}/")
            assert r.content == b"ok"
            await asyncio.sleep(0.01)
        rs = await client.fetch_all([f"{server.url}/"] * 50, concurrency=5)
        assert all(r.content == b"ok" for r in rs)
        assert lean_stats() == (before[0] + 70, before[1])
        assert len(server.requests) == server.connections == 70


async def test_lean_path_connection_close_is_not_reused() -> None:
    with CannedServer(CANNED["connection-close"], close=False) as server:
        client = fastio.Client()
        for _ in range(5):
            assert (await client.get(f"{server.url}/")).content == b"ok"
        # Kept open by the server, but the response said close: never reused.
        assert server.connections == 5


async def test_lean_path_chunked_and_large_bodies_through_fetch_all(http_server: Any) -> None:
    u = http_server.url
    before = lean_stats()
    urls = [
        f"{u}/stream-bytes/300000?seed=7&chunk_size=1000",
        f"{u}/bytes/1000001?seed=3",
        f"{u}/bytes/10?seed=4",
        f"{u}/large/5",
    ]
    rs = await fastio.Client().fetch_all(urls, concurrency=2)
    assert rs[0].content == deterministic_bytes(300000, 7)
    assert rs[1].content == deterministic_bytes(1000001, 3)
    assert rs[2].content == deterministic_bytes(10, 4)
    assert len(rs[3].content) == 5 * 1024 * 1024
    assert lean_stats() == (before[0] + 4, before[1])
    capped = fastio.Client(max_body_size=299_999)
    r = (await capped.fetch_all([urls[0]]))[0]
    assert isinstance(r, fastio.BodyTooLarge)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "brotli", "zstd"])
async def test_lean_path_decodes_bodies_as_reqwest(
    http_server: Any, monkeypatch: pytest.MonkeyPatch, encoding: str
) -> None:
    url = f"{http_server.url}/{encoding}"
    before = lean_stats()
    lean = (await fastio.Client().fetch_all([url]))[0]
    assert lean_stats() == (before[0] + 1, before[1])
    plain = (await reqwest_client(monkeypatch).fetch_all([url]))[0]
    assert lean.json() == plain.json()
    # Content-Encoding and Content-Length removed, as reqwest does.
    drop = {"date"}
    assert [h for h in lean.headers.items() if h[0] not in drop] == [
        h for h in plain.headers.items() if h[0] not in drop
    ]
    assert "content-encoding" not in lean.headers


async def test_lean_path_redirects_through_fetch_all(
    http_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = http_server.url
    urls = [f"{u}/redirect/3", f"{u}/redirect/1", f"{u}/get"]
    lean = await fastio.Client().fetch_all(urls)
    plain = await reqwest_client(monkeypatch).fetch_all(urls)
    assert [(r.status, r.url) for r in lean] == [(r.status, r.url) for r in plain]
    assert [r.status for r in lean] == [200, 200, 200] and lean[0].url == f"{u}/get"
    rs = await fastio.Client(max_redirects=2).fetch_all(urls[:1])
    assert isinstance(rs[0], fastio.TooManyRedirects)


async def test_lean_path_timeouts_match_reqwest(
    http_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = http_server.url
    urls = [f"{u}/hang-headers", f"{u}/hang"]
    before = lean_stats()
    lean = await fastio.Client().fetch_all(urls, timeout=0.3)
    assert lean_stats() == (before[0] + 2, before[1])
    plain = await reqwest_client(monkeypatch).fetch_all(urls, timeout=0.3)
    assert [outcome(r) for r in lean] == [outcome(r) for r in plain]
    assert all(isinstance(r, fastio.ReadTimeout) for r in lean)
    with CannedServer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", stall=True) as server:
        lean = await fastio.Client(timeout=0.3).fetch_all([server.url])
        plain = await reqwest_client(monkeypatch, timeout=0.3).fetch_all([server.url])
    assert outcome(lean[0]) == outcome(plain[0])


async def test_lean_path_cancelled_fetch_all_closes_its_connections(http_server: Any) -> None:
    u = http_server.url
    conns = open_connections(u)
    base = await wait_live_tasks(0)
    before = lean_stats()
    client = fastio.Client()
    task = asyncio.create_task(client.fetch_all([f"{u}/hang"] * 6, concurrency=3))
    deadline = time.monotonic() + 5
    while open_connections(u) < conns + 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert lean_stats()[0] == before[0] + 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_live_tasks(base) == base
    assert wait_open_at_most(u, conns) <= conns
    assert lean_stats() == (before[0] + 3, before[1])


async def test_lean_path_per_host_limit(http_server: Any) -> None:
    u = http_server.url
    sync_get(f"{u}/concurrency/reset")
    client = fastio.Client(max_connections_per_host=4)
    before = lean_stats()
    rs = await client.fetch_all([f"{u}/concurrency/hold?ms=20"] * 30, concurrency=30)
    assert all(r.status == 200 for r in rs)
    assert lean_stats() == (before[0] + 30, before[1])
    assert sync_get(f"{u}/concurrency/stats")["max"] == 4


async def test_closing_a_client_closes_its_lean_connections(http_server: Any) -> None:
    u = http_server.url
    conns = open_connections(u)
    client = fastio.Client()
    rs = await client.fetch_all([f"{u}/get"] * 8, concurrency=4)
    assert all(r.status == 200 for r in rs)
    assert open_connections(u) >= conns + 1
    await client.close()
    assert wait_open_at_most(u, conns) <= conns
