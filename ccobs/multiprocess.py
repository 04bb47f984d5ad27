"""Keeping a ``PROMETHEUS_MULTIPROC_DIR`` true to the processes that serve now.

In prometheus_client's multiprocess mode every worker writes its samples to
files in one directory, and ``/metrics`` adds them up. Two things make those
files lie, whatever serves the app (``ccobs proxy --workers``, gunicorn,
``uvicorn --workers``):

- files left by a previous run that could not shut down (SIGKILL, OOM, power
  loss) add that run's counts to this one's and keep its in-flight requests
  in ``active_requests`` forever: call :func:`prepare_multiprocess_dir` once,
  in the parent, before any worker starts;
- a worker killed while running cannot mark itself dead, so the requests it
  had in flight stay in ``active_requests`` after its replacement starts:
  call :func:`forget_dead_workers` in each worker as it starts (gunicorn's
  ``post_worker_init`` hook, or the app factory).

Counters of dead workers are kept by both: their counts were served.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["forget_dead_workers", "prepare_multiprocess_dir"]


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` or empty it of a previous run's prometheus_client files.

    Totals then start from zero with each run, as they do for a single
    process after a restart (Prometheus's ``rate()`` handles the reset). Call
    it before any process of this run writes there: only ``*.db`` files are
    removed.
    """
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(glob.escape(path), "*.db")):
        os.remove(name)


def forget_dead_workers(path: str | os.PathLike[str]) -> None:
    """Drop the live-gauge files of workers that are gone without saying so.

    A worker that is SIGKILLed or OOM-killed cannot mark itself dead, and its
    server replaces it: without this its requests in flight would stay in
    ``active_requests`` until the whole service restarts. Its counters stay,
    since their counts were served. Run in each worker as it starts, so the
    replacement cleans up after the worker it replaces.
    """
    from prometheus_client import multiprocess

    path = os.fspath(path)
    for name in glob.glob(os.path.join(glob.escape(path), "gauge_live*_*.db")):
        pid = Path(name).stem.rpartition("_")[2]
        if pid.isdigit() and not _process_exists(int(pid)):
            multiprocess.mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True
