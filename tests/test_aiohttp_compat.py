"""fastio.aiohttp: aiohttp's client API, and the documents' code run on it.

The functions below are the documents' code (shared/seeds) with only
`aiohttp.ClientSession` swapped for `fastio.aiohttp.ClientSession` and the
httpbin URLs pointed at the local test server.
"""

from __future__ import annotations

import asyncio
import builtins
import socket
import time
from typing import Any

import pytest
from yarl import URL

import fastio
import fastio.aiohttp as aiohttp
from httpserver import SLIDESHOW

# ---------------------------------------------------- the documents' code


async def fetch_url(session: Any, url: str) -> dict[str, Any]:
    """异步获取URL内容"""
    try:
        async with session.get(url) as response:
            if response.status == 200:
                content = await response.text()
                return {"url": url, "status": response.status, "length": len(content)}
            else:
                return {"url": url, "status": response.status, "error": "HTTP Error"}
    except Exception as e:
        return {"url": url, "error": str(e)}


async def fetch_multiple_urls(base: str) -> list[dict[str, Any]]:
    urls = [
        f"{base}/delay/1",
        f"{base}/delay/2",
        f"{base}/json",
        f"{base}/uuid",
        f"{base}/status/500",
    ]
    async with aiohttp.ClientSession() as session:
        start_time = time.time()
        tasks = [fetch_url(session, url) for url in urls]
        results = await asyncio.gather(*tasks)
        end_time = time.time()
        for result in results:
            print(f"{result['url']}: {result.get('status', 'ERROR')}")
        print(f"总耗时: {end_time - start_time:.2f}秒")
        return results


async def fetch_with_retry(session: Any, url: str, max_retries: int = 3) -> Any:
    """带重试机制的HTTP请求"""
    for attempt in range(max_retries):
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 200:
                    return await response.json()
                elif response.status >= 500:
                    if attempt < max_retries - 1:
                        await asyncio.sleep(0.01 * 2**attempt)  # 指数退避 (scaled down)
                        continue
                return {"status": response.status}
        except Exception as e:
            if attempt < max_retries - 1:
                await asyncio.sleep(0.01 * 2**attempt)
                continue
            raise e


class AsyncWebAPI:
    """The first document's API client with a TTL cache."""

    def __init__(self) -> None:
        self.session: Any = None
        self.cache: dict[str, Any] = {}
        self.cache_ttl = 300

    async def init_session(self) -> None:
        self.session = aiohttp.ClientSession()

    async def fetch_external_api(self, url: str) -> dict[str, Any]:
        if url in self.cache:
            cached_data, timestamp = self.cache[url]
            if time.time() - timestamp < self.cache_ttl:
                return cached_data  # type: ignore[no-any-return]
        try:
            async with self.session.get(url) as response:
                if response.status == 200:
                    data = await response.json()
                    self.cache[url] = (data, time.time())
                    return data  # type: ignore[no-any-return]
                else:
                    raise Exception(f"HTTP {response.status}")
        except Exception as e:
            print(f"获取API数据失败: {e}")
            raise

    async def handle_user_request(self, base: str, user_id: int) -> dict[str, Any]:
        tasks = [
            self.fetch_external_api(f"{base}/anything/users/{user_id}"),
            self.fetch_external_api(f"{base}/status/404?orders={user_id}"),
            self.fetch_external_api(f"{base}/anything/users/{user_id}/preferences"),
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        user_data, orders_data, preferences_data = results
        if isinstance(user_data, Exception):
            raise user_data
        return {
            "user": user_data,
            "orders": orders_data if not isinstance(orders_data, Exception) else [],
            "preferences": preferences_data if not isinstance(preferences_data, Exception) else {},
        }


# ------------------------------------------------------------------- tests


async def test_fetch_multiple_urls_runs_concurrently(http_server: Any) -> None:
    start = time.monotonic()
    results = await fetch_multiple_urls(http_server.url)
    assert time.monotonic() - start < 3.5  # 1 s + 2 s concurrently, not 3 s + more
    assert [r.get("status") for r in results] == [200, 200, 200, 200, 500]
    assert results[2]["length"] > 100
    assert results[4]["error"] == "HTTP Error"


async def test_fetch_url_reports_connection_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        result = await fetch_url(session, f"http://127.0.0.1:{port}/")
    assert "error" in result and "status" not in result


async def test_fetch_with_retry(http_server: Any) -> None:
    u = http_server.url
    async with aiohttp.ClientSession() as session:
        assert await fetch_with_retry(session, f"{u}/json") == SLIDESHOW
        assert await fetch_with_retry(session, f"{u}/status/500") == {"status": 500}
        assert await fetch_with_retry(session, f"{u}/status/404") == {"status": 404}
        with pytest.raises(aiohttp.ClientError):
            await fetch_with_retry(session, "http://127.0.0.1:1/")
        start = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                f"{u}/hang-headers", timeout=aiohttp.ClientTimeout(total=0.3)
            ) as r:
                await r.text()
        assert time.monotonic() - start < 3


async def test_async_web_api_with_ttl_cache(http_server: Any) -> None:
    api = AsyncWebAPI()
    await api.init_session()
    try:
        result = await api.handle_user_request(http_server.url, 7)
        assert result["user"]["url"].endswith("/anything/users/7")
        assert result["orders"] == []
        assert result["preferences"]["url"].endswith("/preferences")
        cached = await api.fetch_external_api(f"{http_server.url}/anything/users/7")
        assert cached is result["user"]
    finally:
        await api.session.close()


async def test_session_surface(http_server: Any) -> None:
    u = http_server.url
    timeout = aiohttp.ClientTimeout(total=10, connect=2)
    connector = aiohttp.TCPConnector(limit=10, limit_per_host=5)
    async with aiohttp.ClientSession(
        base_url=u, headers={"X-Session": "1"}, timeout=timeout, connector=connector
    ) as session:
        r = await session.get("/get", params={"a": "b"})  # awaitable without `async with`
        assert r.status == 200 and r.reason == "OK" and r.ok
        body = await r.json()
        assert body["args"] == {"a": "b"} and body["headers"]["X-Session"] == "1"
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.content_type == "application/json"
        assert str(r.url) == f"{u}/get?a=b"
        async with session.post("/post", json={"x": 1}) as r:
            assert (await r.json())["json"] == {"x": 1}
        async with session.post("/post", data=b"raw") as r:
            assert (await r.json())["data"] == "raw"
        async with session.get("/bytes/10") as r:
            assert len(await r.read()) == 10
            with pytest.raises(aiohttp.ContentTypeError):
                await r.json()
        async with session.get("/status/418") as r:
            with pytest.raises(aiohttp.ClientResponseError) as info:
                r.raise_for_status()
            assert info.value.status == 418
    assert session.closed


async def test_raise_for_status_session(http_server: Any) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        with pytest.raises(aiohttp.ClientResponseError) as info:
            await session.get(f"{http_server.url}/status/503")
        assert info.value.status == 503


async def test_exception_classes() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get("http://127.0.0.1:1/")
        assert isinstance(info.value, aiohttp.ClientConnectionError)
        assert isinstance(info.value, aiohttp.ClientError)
        assert isinstance(info.value.__cause__, fastio.ConnectError)
        assert isinstance(info.value.__cause__, builtins.ConnectionError)
        with pytest.raises(aiohttp.InvalidURL):
            await session.get("not a url")
    assert issubclass(aiohttp.ServerTimeoutError, asyncio.TimeoutError)
    assert issubclass(aiohttp.ServerTimeoutError, aiohttp.ClientConnectionError)


async def test_connector_limit_per_host(http_server: Any) -> None:
    import json
    import urllib.request

    def stats(path: str) -> Any:
        with urllib.request.urlopen(f"{http_server.url}{path}", timeout=10) as r:
            return json.loads(r.read())

    stats("/concurrency/reset")
    connector = aiohttp.TCPConnector(limit_per_host=2)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(session.get(f"{http_server.url}/concurrency/hold?ms=50") for _ in range(8))
        )
    assert stats("/concurrency/stats")["max"] == 2


async def _url_and_error_surface(session: Any, u: str, error: type[Exception]) -> dict[str, Any]:
    """What code written for aiohttp reads off a response and its error."""
    out: dict[str, Any] = {}
    async with session.get(f"{u}/redirect/2", params={"q": "1"}, headers={"X-Req": "r"}) as r:
        out["url"] = (type(r.url).__module__, type(r.url).__name__, str(r.url))
        out["real_url"] = (type(r.real_url).__name__, str(r.real_url))
        out["url_parts"] = (r.url.scheme, r.url.host, r.url.port, r.url.path)
        info = r.request_info
        out["info"] = (type(info.url).__name__, str(info.url), str(info.real_url), info.method)
        out["info_headers"] = (info.headers["x-req"], info.headers["X-Session"])
    async with session.get(f"{u}/status/404") as r:
        with pytest.raises(error) as e:
            r.raise_for_status()
        err = e.value
        out["err"] = (err.status, err.message, str(err), err.history, err.args[1])
        out["err_headers"] = err.headers["Content-Type"]
        out["err_info"] = (str(err.request_info.url), err.request_info.method)
        out["err_info_is_resp"] = err.request_info == r.request_info
    return out


async def test_url_request_info_and_response_error_as_aiohttp(http_server: Any) -> None:
    import aiohttp as real

    u = http_server.url
    async with aiohttp.ClientSession(headers={"X-Session": "s"}) as session:
        ours = await _url_and_error_surface(session, u, aiohttp.ClientResponseError)
    async with real.ClientSession(headers={"X-Session": "s"}) as session:
        theirs = await _url_and_error_surface(session, u, real.ClientResponseError)
    assert ours["url"] == ("yarl", "URL", f"{u}/get")
    assert ours == theirs


async def test_too_many_redirects_carries_request_info(http_server: Any) -> None:
    u = http_server.url
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.TooManyRedirects) as e:
            await session.get(f"{u}/redirect/30")
    err = e.value
    assert isinstance(err, aiohttp.ClientResponseError)
    assert err.request_info.url == URL(f"{u}/redirect/30") and err.request_info.method == "GET"
    assert str(err).endswith(f"url='{u}/redirect/30'")
