"""What moves the lab cloud along: one timer thread over a heap of due calls (never a thread
per resource), and a small pool for machine hooks that may block for seconds."""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

log = logging.getLogger(__name__)


class Timer:
    """``at(due, fn)`` calls ``fn`` on the timer thread once ``time.monotonic()`` reaches
    ``due``; ``hook(key, fn)`` calls ``fn`` on the pool, after every earlier hook of the same
    ``key`` (one resource's hooks never overlap), without holding up anything else."""

    def __init__(self, hook_threads: int = 16):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._pending = 0  # due calls and hooks not finished yet
        self._closed = False
        self._tails: dict[str, Future] = {}  # the last hook submitted per key
        self._pool = ThreadPoolExecutor(hook_threads, thread_name_prefix="labcloud-hook")
        self._thread = threading.Thread(target=self._loop, name="labcloud-timer", daemon=True)
        self._thread.start()

    def at(self, due: float, fn: Callable[[], None]) -> None:
        with self._cv:
            if self._closed:
                return
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            self._pending += 1
            self._cv.notify_all()

    def hook(self, key: str, fn: Callable[[], object]) -> Future:
        with self._cv:
            if self._closed:
                future: Future = Future()
                future.cancel()
                return future
            self._pending += 1
            previous = self._tails.get(key)
            future = self._pool.submit(self._run_hook, previous, fn)
            self._tails[key] = future
        future.add_done_callback(lambda f: self._forget(key, f))
        return future

    def cancel_due(self) -> None:
        """Drop every due call not started yet."""
        with self._cv:
            self._pending -= len(self._heap)
            self._heap.clear()
            self._cv.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is due or running; False if ``timeout`` passed first."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Stop the timer (due calls are dropped) and wait for running hooks."""
        with self._cv:
            self._closed = True
            self._heap.clear()
            self._cv.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._heap
                                            or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                fn = heapq.heappop(self._heap)[2]
            self._run(fn)

    def _run_hook(self, previous: Future | None, fn: Callable[[], object]) -> None:
        if previous is not None:  # submitted earlier, so already running or done: no deadlock
            wait([previous])
        self._run(fn)

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # a bug of ours: keep the cloud running, say where
            log.exception("lab cloud: a transition failed")
        finally:
            with self._cv:
                self._pending -= 1
                if self._pending == 0:
                    self._cv.notify_all()

    def _forget(self, key: str, future: Future) -> None:
        with self._cv:
            if self._tails.get(key) is future:
                del self._tails[key]
