"""Process-wide thread counts (torch intra-op, FAISS OpenMP) lowered for a short region, safely across threads.

The dashboard serves several sessions from threads of one process, and `torch.set_num_threads` and
`faiss.omp_set_num_threads` are process-wide: a bare save/set/restore in two sessions at once can
restore another session's lowered value for good. Here the first region to enter saves and lowers the
count and the last to leave restores it, under a lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class ScopedThreadCount:
    """`with limit(1):` runs the block with the count lowered to 1 while any such block runs."""

    def __init__(self, get: Callable[[], int], set_: Callable[[int], None]):
        self._get, self._set = get, set_
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    @contextlib.contextmanager
    def limit(self, threads: int) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self._get()
                if self._saved > threads:
                    self._set(threads)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    if self._get() != self._saved:
                        self._set(self._saved)
                    self._saved = None


def _torch_count() -> ScopedThreadCount:
    import torch

    return ScopedThreadCount(torch.get_num_threads, torch.set_num_threads)


def _faiss_count() -> ScopedThreadCount:
    import faiss

    return ScopedThreadCount(faiss.omp_get_max_threads, faiss.omp_set_num_threads)


_COUNTS: dict[str, ScopedThreadCount] = {}
_COUNTS_LOCK = threading.Lock()
_FACTORIES = {"torch": _torch_count, "faiss": _faiss_count}


def thread_count(library: str) -> ScopedThreadCount:
    """The one scoped count of `library` ("torch" or "faiss") in this process."""
    with _COUNTS_LOCK:
        if library not in _COUNTS:
            _COUNTS[library] = _FACTORIES[library]()
        return _COUNTS[library]
