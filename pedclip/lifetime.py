"""Worker processes die with their parent: a SIGKILLed `embed` or `data ingest` leaves no decoder running.

Every process pool pedclip starts passes `exit_with_parent` as its initializer. On Linux the kernel sends
the worker SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG); everywhere a watchdog thread also
polls the parent pid and exits the worker once it changes (the worker was re-parented to init).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCHDOG_SECONDS = 0.5


def exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: die when `parent_pid` does (kernel signal on Linux, else within WATCHDOG_SECONDS)."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="pedclip-parent-watchdog", daemon=True).start()


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (e.g. musl without it): the watchdog still works
        return


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(WATCHDOG_SECONDS):
        if os.getppid() != parent_pid:
            os._exit(1)


def pool_initializer() -> tuple:
    """(initializer, initargs) for a ProcessPoolExecutor started by this process."""
    return exit_with_parent, (os.getpid(),)
