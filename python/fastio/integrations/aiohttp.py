"""Expose fastio's metrics from an aiohttp app and time its handlers.

    from aiohttp import web
    import fastio.integrations.aiohttp

    app = web.Application()
    fastio.integrations.aiohttp.setup(app)   # GET /metrics, handler timing

Handlers are counted in the ``http_server`` family, labelled by route
(the resource's canonical path, e.g. ``/users/{id}``, so the number of series
stays bounded), method and status class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fastio._fastio import metric_series, render_prometheus

__all__ = ["metrics_handler", "setup"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def metrics_handler(request: web.Request) -> web.Response:
    """Serves the Prometheus text exposition of every fastio metric."""
    body = render_prometheus()
    return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<unmatched>"


def _timing_middleware(skip: str) -> Any:
    @web.middleware
    async def fastio_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route(request)
        if route == skip:
            return await handler(request)
        # In flight is counted on a series without a status class (it is not
        # known yet); the finished call is recorded under its status class.
        running = metric_series("http_server", [route, request.method, ""])
        token = running.begin()
        status, outcome = 500, 1
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            outcome = 2
            raise
        finally:
            if outcome != 2:
                outcome = 0 if status < 500 else 1
            done = metric_series("http_server", [route, request.method, f"{status // 100}xx"])
            running.finish(token, outcome, done)
        return response

    return fastio_metrics


def setup(app: web.Application, path: str = "/metrics") -> None:
    """Mount the metrics endpoint at `path` and time every handler of `app`."""
    app.router.add_get(path, metrics_handler)
    app.middlewares.append(_timing_middleware(path))
