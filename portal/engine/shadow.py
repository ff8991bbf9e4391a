"""Shadow copies of a canary: a share of the baseline's calls is also sent to the canary
target, in the background, and its answer is thrown away.

A copy is its own call (own call id, arm ``shadow``, its own ledger rows) with one target and
one attempt (no retries, no failover: a failure is data for the guard, not something to
hide). It never delays or fails the caller's call: it starts when the caller's flow starts,
runs beside it, and whatever it raises stays here (a debug log line; its ledger row says it
failed). Every copy has a deadline (the caller's, or the canary target's ``timeout_s`` when
the call has none) and the number in flight is bounded: beyond it a copy is skipped, counted
in `dropped` and logged once, so shadowing cannot queue work without end.

- `ThreadShadows` (`portal.Client`): a small pool of worker threads, each running its
  copy's flow with the client's own sync driver (the client's HTTP pools are
  thread-safe); ``close()`` waits for the copies in flight (each bounded by its deadline).
- `TaskShadows` (`portal.AsyncClient`): a task on the caller's event loop (an asyncio task,
  or a trio system task); the flow ends itself at the copy's deadline, and a cancel scope
  ends the task `SHADOW_GRACE_S` later if it has not; ``aclose()`` cancels the copies still
  running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from portal.effects import Flow

__all__ = ["SHADOW_THREADS", "SHADOWS_IN_FLIGHT", "TaskShadows", "ThreadShadows"]

log = logging.getLogger("portal.routing")

#: worker threads of a sync client's shadow copies
SHADOW_THREADS = 4
#: shadow copies a client runs (or queues) at once; beyond this a copy is skipped
SHADOWS_IN_FLIGHT = 32
#: an async copy still running this long after its deadline is cancelled
SHADOW_GRACE_S = 1.0


class _Shadows:
    """What both runners share: the in-flight bound and the count of skipped copies."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: copies skipped because `limit` were already in flight
        self.dropped = 0
        self.running = 0
        self._lock = threading.Lock()
        self._warned = False

    def _admit(self) -> bool:
        with self._lock:
            if self.running >= self.limit:
                self.dropped += 1
                warn = not self._warned
                self._warned = True
            else:
                self.running += 1
                return True
        if warn:
            log.warning(
                "portal: %d shadow copies already in flight; skipping new ones until some "
                "finish (shadow traffic never queues without bound)",
                self.limit,
            )
        return False

    def _done(self) -> None:
        with self._lock:
            self.running -= 1


def _failed(exc: BaseException) -> None:
    """A copy's failure is already in its ledger row; the caller never sees it."""
    log.debug("portal: shadow copy failed: %s: %s", type(exc).__name__, exc)


class ThreadShadows(_Shadows):
    """Shadow copies of a sync client on `SHADOW_THREADS` background threads."""

    def __init__(
        self,
        run: Callable[[Flow[Any]], Any],
        threads: int = SHADOW_THREADS,
        limit: int = SHADOWS_IN_FLIGHT,
    ) -> None:
        super().__init__(limit)
        self._run = run
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def launch(self, flow: Flow[Any], deadline: float) -> None:
        """Run ``flow`` in the background (or skip it: closed client, too many in flight)."""
        if self._closed or not self._admit():
            flow.close()
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="portal-shadow")
        self._pool.submit(self._one, flow, deadline)

    def _one(self, flow: Flow[Any], deadline: float) -> None:
        try:
            if time.perf_counter() >= deadline:  # waited its turn past its deadline
                flow.close()
                return
            self._run(flow)
        except Exception as exc:
            _failed(exc)
        finally:
            self._done()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Until no copy is in flight (tests, and a client closing gracefully)."""
        end = time.perf_counter() + timeout_s
        while self.running and time.perf_counter() < end:
            time.sleep(0.005)

    def close(self) -> None:
        """Skip the queued copies and wait for those running (each ends by its deadline)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                self.running = 0


class TaskShadows(_Shadows):
    """Shadow copies of an async client as background tasks on the caller's event loop."""

    def __init__(
        self, run: Callable[[Flow[Any]], Awaitable[Any]], limit: int = SHADOWS_IN_FLIGHT
    ) -> None:
        super().__init__(limit)
        self._run = run
        self._scopes: set[Any] = set()
        self._tasks: set[Any] = set()  # strong references to asyncio tasks

    def launch(self, flow: Flow[Any], deadline: float) -> None:
        if not self._admit():
            flow.close()
            return
        import sniffio

        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        try:
            if library == "asyncio":
                import asyncio

                task = asyncio.get_running_loop().create_task(self._one(flow, deadline))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif library == "trio":
                import trio

                trio.lowlevel.spawn_system_task(self._one, flow, deadline)
            else:
                raise RuntimeError(f"no running event loop ({library})")
        except Exception as exc:
            self._done()
            flow.close()
            _failed(exc)

    async def _one(self, flow: Flow[Any], deadline: float) -> None:
        import anyio

        # the flow ends itself at the deadline (and records why); the scope is the backstop
        left = deadline - time.perf_counter() + SHADOW_GRACE_S
        scope = anyio.CancelScope(deadline=anyio.current_time() + left)
        self._scopes.add(scope)
        try:
            with scope:
                await self._run(flow)
        except Exception as exc:
            _failed(exc)
        finally:
            flow.close()
            self._scopes.discard(scope)
            self._done()

    async def wait(self, timeout_s: float = 30.0) -> None:
        """Until no copy is in flight (tests, and a client closing gracefully)."""
        import anyio

        with anyio.move_on_after(timeout_s):
            while self.running:
                await anyio.sleep(0.005)

    async def aclose(self) -> None:
        """Cancel the copies still running and let them record their cancellation."""
        for scope in list(self._scopes):
            scope.cancel()
        await self.wait(5.0)
