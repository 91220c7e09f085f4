"""``Connection.add_listener`` / ``remove_listener`` (LISTEN/NOTIFY).

The Rust side keeps a listening session per connection and queues its
notifications; one asyncio task per listening connection pulls them and calls
``callback(connection, pid, channel, payload)`` on the event loop (a coroutine
function's result is scheduled as a task), as asyncpg does.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import Any, Callable

Callback = Callable[[Any, int, str, str], Any]


class _State:
    __slots__ = ("channels", "task")

    def __init__(self) -> None:
        self.channels: dict[str, list[Callback]] = {}
        self.task: asyncio.Task[None] | None = None


_states: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()


async def _dispatch(conn: Any, state: _State) -> None:
    loop = asyncio.get_running_loop()
    while True:
        item = await conn._next_notification()
        if item is None:
            return
        pid, channel, payload = item
        for cb in list(state.channels.get(channel, ())):
            try:
                result = cb(conn, pid, channel, payload)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception as e:
                loop.call_exception_handler(
                    {"message": f"Unhandled exception in listener callback {cb!r}", "exception": e}
                )


async def add_listener(conn: Any, channel: str, callback: Callback) -> None:
    state = _states.get(conn)
    if state is None:
        state = _states[conn] = _State()
    callbacks = state.channels.setdefault(channel, [])
    callbacks.append(callback)
    if len(callbacks) == 1:
        try:
            await conn._listen(channel)
        except BaseException:
            del state.channels[channel]
            raise
    if state.task is None or state.task.done():
        state.task = asyncio.get_running_loop().create_task(_dispatch(conn, state))


async def remove_listener(conn: Any, channel: str, callback: Callback) -> None:
    state = _states.get(conn)
    if state is None or callback not in state.channels.get(channel, ()):
        return
    state.channels[channel].remove(callback)
    if state.channels[channel]:
        return
    del state.channels[channel]
    await conn._unlisten(channel)
    if not state.channels:
        await conn._stop_listening()
        if state.task is not None:
            await state.task
        del _states[conn]
