"""The event loop that chunk runs call the LLM on, one per worker process, and the bridge
that gives their database work back to the thread that runs the chunk.

A chunk used to run on a fresh loop (``async_to_sync``): every chunk built a new HTTP
client, opened new connections to the endpoint and started new threads. On one loop that
lives as long as the process, the clients and their connection pools
(``AsyncLLMClient(reuse_http=True)``) serve every chunk after the first.

Database work must stay on the calling thread: Django's connection there is the one Celery
opens and closes around tasks, and tests see their own transaction. ``Bridge.run`` sends
the coroutine to the loop and serves the database calls it sends back (``Bridge.db``)
until it ends, so the calls of one chunk run one at a time, in order, on one connection.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_owner = 0  # the pid that started it: a forked child starts its own


def process_loop() -> asyncio.AbstractEventLoop:
    """This process's LLM loop, started (in a daemon thread) on first use."""
    global _loop, _owner
    with _lock:
        if _loop is None or _owner != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="synthaug-llm", daemon=True).start()
            _loop, _owner = loop, os.getpid()
        return _loop


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Bridge:
    """Runs one coroutine on the process loop; this thread serves its database calls."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    async def db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on the calling thread; await its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((lambda: function(*args, **kwargs), future))
        return await future

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the process loop and return its result (or raise)."""
        loop = self._loop = process_loop()
        done = asyncio.run_coroutine_threadsafe(coroutine, loop)
        done.add_done_callback(lambda _: self._jobs.put(None))
        try:
            while (job := self._jobs.get()) is not None:
                call, future = job
                try:
                    result, error = call(), None
                except Exception as exc:
                    result, error = None, exc
                loop.call_soon_threadsafe(_settle, future, result, error)
        except BaseException:
            # Interrupted here (a task's time limit): stop the coroutine too.
            done.cancel()
            raise
        return done.result()
