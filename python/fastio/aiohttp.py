"""aiohttp's client API on fastio: swap ``aiohttp.ClientSession`` for
``fastio.aiohttp.ClientSession`` (or ``import fastio.aiohttp as aiohttp``).

Covered: ``ClientSession(base_url, headers, timeout=ClientTimeout(...),
connector=TCPConnector(limit, limit_per_host), raise_for_status)``, the verbs as
``async with session.get(url) as r`` or ``r = await session.get(url)``, the
response's ``status``, ``reason``, ``ok``, ``headers``, ``url`` / ``real_url``
(``yarl.URL``, as aiohttp), ``request_info``, ``await text()/json()/read()``,
``raise_for_status()``, and aiohttp's exception classes (fastio's errors are
raised as them, chained).

Needs ``yarl`` and ``multidict`` (aiohttp's own URL and header types; installed
with aiohttp, or with ``pip install 'fastio[aiohttp]'``).
"""

from __future__ import annotations

import asyncio as _asyncio
import json as _json
from collections.abc import Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, NamedTuple, Optional

try:
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL
except ImportError as _e:  # pragma: no cover - exercised only without aiohttp's deps
    raise ImportError(
        "fastio.aiohttp needs yarl and multidict, aiohttp's URL and header types "
        "(pip install 'fastio[aiohttp]')"
    ) from _e

import fastio

__all__ = [
    "ClientConnectionError",
    "ClientConnectorError",
    "ClientError",
    "ClientPayloadError",
    "ClientResponse",
    "ClientResponseError",
    "ClientSession",
    "ClientTimeout",
    "ConnectionTimeoutError",
    "ContentTypeError",
    "InvalidURL",
    "RequestInfo",
    "ServerConnectionError",
    "ServerTimeoutError",
    "SocketTimeoutError",
    "TCPConnector",
    "TooManyRedirects",
]


class ClientError(Exception):
    """Base class of the client errors (aiohttp.ClientError)."""


class ClientConnectionError(ClientError):
    """Connecting or talking to the server failed."""


class ClientConnectorError(ClientConnectionError, OSError):
    """The connection could not be made (refused, DNS, TLS)."""


class ServerConnectionError(ClientConnectionError):
    """The server side of a connection failed."""


class ServerTimeoutError(ServerConnectionError, _asyncio.TimeoutError):
    """A timeout passed (also asyncio.TimeoutError / TimeoutError)."""


class ConnectionTimeoutError(ServerTimeoutError):
    """Connecting took too long."""


class SocketTimeoutError(ServerTimeoutError):
    """Reading the response took too long."""


class ClientPayloadError(ClientError):
    """The response body could not be read or decoded."""


class InvalidURL(ClientError, ValueError):
    """A malformed URL or unsupported scheme."""

    def __init__(self, url: Any, description: str | None = None) -> None:
        self.url = url
        self.description = description
        super().__init__(url if description is None else f"{url}: {description}")


class RequestInfo(NamedTuple):
    """aiohttp.RequestInfo: what was sent (``url`` without fragment, ``real_url`` as given)."""

    url: URL
    method: str
    headers: CIMultiDictProxy[str]
    real_url: URL


class ClientResponseError(ClientError):
    """An error tied to a response: ``request_info``, ``history``, ``status``,
    ``message``, ``headers`` (aiohttp's signature and ``str()``)."""

    def __init__(
        self,
        request_info: RequestInfo | None,
        history: tuple[Any, ...] = (),
        *,
        status: int | None = None,
        message: str = "",
        headers: Any = None,
    ) -> None:
        self.request_info = request_info
        self.history = history
        self.status = status if status is not None else 0
        self.message = message
        self.headers = headers
        self.args = (request_info, history)

    def __str__(self) -> str:
        url = "" if self.request_info is None else str(self.request_info.real_url)
        return f"{self.status}, message={self.message!r}, url={url!r}"

    def __repr__(self) -> str:
        args = f"{self.request_info!r}, {self.history!r}"
        if self.status != 0:
            args += f", status={self.status!r}"
        if self.message != "":
            args += f", message={self.message!r}"
        if self.headers is not None:
            args += f", headers={self.headers!r}"
        return f"{type(self).__name__}({args})"


class ContentTypeError(ClientResponseError):
    """``json()`` on a response whose Content-Type is not JSON."""


class TooManyRedirects(ClientResponseError):
    """More redirects than allowed."""


def _translate(exc: BaseException, request_info: RequestInfo) -> BaseException:
    """fastio's exception as the aiohttp class code written for aiohttp catches."""
    msg = str(exc)
    if isinstance(exc, fastio.ConnectTimeout):
        return ConnectionTimeoutError(msg)
    if isinstance(exc, fastio.HTTPTimeoutError):
        return SocketTimeoutError(msg)
    if isinstance(exc, fastio.ConnectError):
        return ClientConnectorError(msg)
    if isinstance(exc, fastio.ReadError):
        return ServerConnectionError(msg)
    if isinstance(exc, fastio.InvalidURL):
        return InvalidURL(msg)
    if isinstance(exc, fastio.TooManyRedirects):
        return TooManyRedirects(request_info, (), message=msg)
    if isinstance(exc, (fastio.BodyTooLarge, fastio.DecodingError)):
        return ClientPayloadError(msg)
    if isinstance(exc, fastio.RequestError):
        return ClientConnectionError(msg)
    return exc


def _request_info(
    method: str, url: URL, session_headers: CIMultiDict[str] | None, request_headers: Any
) -> RequestInfo:
    """aiohttp's RequestInfo; per-request headers replace the session's of the same name."""
    headers: CIMultiDict[str] = CIMultiDict(session_headers or ())
    if request_headers:
        extra: CIMultiDict[str] = CIMultiDict(request_headers)
        for name in extra.keys():
            headers.popall(name, None)
        headers.extend(extra)
    return RequestInfo(url, method, CIMultiDictProxy(headers), url)


class ClientTimeout:
    """aiohttp.ClientTimeout: ``total`` (whole request) and ``connect`` seconds.

    ``sock_read`` is folded into ``total`` when total is None;
    ``sock_connect`` into ``connect``.
    """

    __slots__ = ("total", "connect", "sock_read", "sock_connect", "ceil_threshold")

    def __init__(
        self,
        total: float | None = None,
        connect: float | None = None,
        sock_read: float | None = None,
        sock_connect: float | None = None,
        ceil_threshold: float = 5,
    ) -> None:
        self.total = total
        self.connect = connect
        self.sock_read = sock_read
        self.sock_connect = sock_connect
        self.ceil_threshold = ceil_threshold

    def _request_timeout(self) -> float | None:
        return self.total if self.total is not None else self.sock_read

    def _connect_timeout(self) -> float | None:
        return self.connect if self.connect is not None else self.sock_connect

    def __repr__(self) -> str:
        return (
            f"ClientTimeout(total={self.total}, connect={self.connect}, "
            f"sock_read={self.sock_read}, sock_connect={self.sock_connect})"
        )


DEFAULT_TIMEOUT = ClientTimeout(total=5 * 60, sock_connect=30)


class TCPConnector:
    """aiohttp.TCPConnector's limits: ``limit`` (0 = none), ``limit_per_host``,
    and ``ssl=False`` to skip certificate checks."""

    def __init__(
        self, *, limit: int = 100, limit_per_host: int = 0, ssl: Any = True, **_: Any
    ) -> None:
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.ssl = ssl
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class ClientResponse:
    """A finished response, with aiohttp's attribute and coroutine names."""

    def __init__(
        self,
        response: fastio.Response,
        method: str,
        session_headers: CIMultiDict[str] | None = None,
        request_headers: Any = None,
    ) -> None:
        self._r = response
        self.method = method
        self._session_headers = session_headers
        self._request_headers = request_headers
        self._url: URL | None = None
        self._request_info: RequestInfo | None = None

    @property
    def status(self) -> int:
        return self._r.status

    @property
    def reason(self) -> str:
        return self._r.reason

    @property
    def ok(self) -> bool:
        return self._r.ok

    @property
    def headers(self) -> fastio.Headers:
        return self._r.headers

    @property
    def url(self) -> URL:
        """The final URL (after redirects), a ``yarl.URL`` without fragment."""
        if self._url is None:
            self._url = URL(self._r.url)
        return self._url

    @property
    def real_url(self) -> URL:
        """aiohttp keeps the fragment here; fastio never sends one, so as ``url``."""
        return self.url

    @property
    def host(self) -> str:
        return self.url.host or ""

    @property
    def request_info(self) -> RequestInfo:
        """As aiohttp: the last request of the redirect chain, so its URL is ``url``."""
        if self._request_info is None:
            self._request_info = _request_info(
                self.method, self.url, self._session_headers, self._request_headers
            )
        return self._request_info

    @property
    def history(self) -> tuple[ClientResponse, ...]:
        """Redirect responses are not kept (reqwest follows them): always ``()``."""
        return ()

    @property
    def content_type(self) -> str:
        ct = self._r.headers.get("content-type") or "application/octet-stream"
        return str(ct).split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        ct = self._r.headers.get("content-type") or ""
        for part in str(ct).split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset":
                return value.strip().strip('"').lower()
        return None

    @property
    def content_length(self) -> int | None:
        value = self._r.headers.get("content-length")
        return int(value) if value is not None else None

    @property
    def version(self) -> str:
        return self._r.http_version

    async def read(self) -> bytes:
        return self._r.content

    async def text(self, encoding: str | None = None, errors: str = "strict") -> str:
        if encoding is None:
            return self._r.text
        return self._r.content.decode(encoding, errors)

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = _json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        if content_type is not None and content_type not in self.content_type:
            raise ContentTypeError(
                self.request_info,
                (),
                status=self.status,
                message=f"Attempt to decode JSON with unexpected mimetype: {self.content_type}",
                headers=self.headers,
            )
        if loads is _json.loads and encoding is None:
            return self._r.json()  # parsed in Rust
        return loads(await self.text(encoding))

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise ClientResponseError(
                self.request_info,
                self.history,
                status=self.status,
                message=self.reason,
                headers=self.headers,
            )

    def release(self) -> None:
        """Nothing to release: the body was read in Rust and the connection is back in the pool."""

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return True

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<ClientResponse({self.url}) [{self.status} {self.reason}]>"


class _RequestContextManager:
    """What ``session.get(...)`` returns: awaitable, and an async context manager."""

    __slots__ = ("_coro", "_resp")

    def __init__(self, coro: Awaitable[ClientResponse]) -> None:
        self._coro = coro
        self._resp: ClientResponse | None = None

    def __await__(self) -> Generator[Any, None, ClientResponse]:
        return self._coro.__await__()

    async def __aenter__(self) -> ClientResponse:
        self._resp = await self._coro
        return self._resp

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._resp is not None:
            self._resp.release()


_UNSET: Any = object()


class ClientSession:
    """aiohttp.ClientSession on a fastio.Client (one connection pool)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        connector: TCPConnector | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: ClientTimeout = _UNSET,
        raise_for_status: bool = False,
        **_ignored: Any,
    ) -> None:
        if timeout is _UNSET or timeout is None:
            timeout = DEFAULT_TIMEOUT
        connector = connector or TCPConnector()
        self._timeout = timeout
        self._raise_for_status = raise_for_status
        self._connector = connector
        self._base_url = None if base_url is None else str(base_url)
        self._headers: CIMultiDict[str] = CIMultiDict(headers or ())
        self._client = fastio.Client(
            base_url=self._base_url,
            headers=list(self._headers.items()) or None,
            timeout=timeout._request_timeout(),
            connect_timeout=timeout._connect_timeout(),
            max_connections=connector.limit or None,
            max_connections_per_host=connector.limit_per_host or None,
            verify=connector.ssl is not False,
        )
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def timeout(self) -> ClientTimeout:
        return self._timeout

    @property
    def connector(self) -> TCPConnector:
        return self._connector

    async def _request(
        self,
        method: str,
        url: Any,
        *,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Any = None,
        timeout: Optional[ClientTimeout] = None,  # noqa: UP045 (py39 runtime annotations)
        raise_for_status: bool | None = None,
        allow_redirects: bool = True,
        ssl: Any = None,
        **_ignored: Any,
    ) -> ClientResponse:
        if self._closed:
            raise RuntimeError("Session is closed")
        kw: dict[str, Any] = {}
        if params is not None:
            kw["params"] = params
        if headers is not None:
            kw["headers"] = dict(headers)
        if json is not None:
            kw["json"] = json
        if data is not None:
            kw["data"] = data
        if isinstance(timeout, (int, float)):
            kw["timeout"] = float(timeout)
        elif timeout is not None:
            kw["timeout"] = timeout._request_timeout()
        method = method.upper()
        try:
            r = await self._client.request(method, str(url), **kw)
        except fastio.HTTPError as e:
            raise _translate(e, self._failed_request_info(method, url, headers)) from e
        resp = ClientResponse(r, method, self._headers, headers)
        check = self._raise_for_status if raise_for_status is None else raise_for_status
        if check:
            resp.raise_for_status()
        return resp

    def _failed_request_info(self, method: str, url: Any, headers: Any) -> RequestInfo:
        text = str(url)
        if self._base_url is not None and "://" not in text:
            text = f"{self._base_url.rstrip('/')}/{text.lstrip('/')}"
        try:
            target = URL(text)
        except ValueError:
            target = URL()
        return _request_info(method, target, self._headers, headers)

    def request(self, method: str, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request(method, url, **kw))

    def get(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("GET", url, **kw))

    def post(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("POST", url, **kw))

    def put(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("PUT", url, **kw))

    def patch(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("PATCH", url, **kw))

    def delete(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("DELETE", url, **kw))

    def head(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("HEAD", url, **kw))

    def options(self, url: Any, **kw: Any) -> _RequestContextManager:
        return _RequestContextManager(self._request("OPTIONS", url, **kw))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
