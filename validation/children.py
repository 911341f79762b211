"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

A parent killed by ``kill -9`` runs no clean-up code, so its children must notice by
themselves. :func:`die_with_parent` is run first thing in a child (the ``initializer`` of a
process pool): on Linux it asks the kernel to send the child SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``); elsewhere a daemon thread polls the parent's pid.
The resource tracker of :mod:`multiprocessing` then exits by itself, as every process
holding its pipe is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the parent's pid where ``prctl`` is not available.
POLL_SECONDS = 0.5
#: Environment variable with the pid of a dask worker's parent (see :func:`dask_setup`).
PARENT_ENV = "MINIMAL_EOS_PARENT_PID"


def die_with_parent(parent: int) -> None:
    """End this process when the process ``parent`` (its parent) dies.

    Parameters
    ----------
    parent : int
        The pid of the parent, read by the parent itself (``os.getpid()`` passed in the
        pool's ``initargs``): a child whose parent already died before this call sees
        another parent pid and exits at once.
    """
    if not _kernel_signal():
        threading.Thread(target=_watch, args=(parent,), daemon=True,
                         name="die-with-parent").start()
    if os.getppid() != parent:
        os._exit(1)


def _kernel_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def dask_setup(worker) -> None:
    """dask preload hook (``preload=["validation.children"]``): the worker process dies
    with the process whose pid its environment holds in :data:`PARENT_ENV` (set by the
    sweep's local cluster); without it, nothing changes."""
    parent = os.environ.get(PARENT_ENV)
    if parent is not None:
        die_with_parent(int(parent))
