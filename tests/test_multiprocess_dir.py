"""ccobs.multiprocess: a ``PROMETHEUS_MULTIPROC_DIR`` holding only what the running processes wrote.

The whole behaviour, with real workers SIGKILLed and restarted, is proven in
``test_multiprocess_restart.py``; these pin down the helpers library users
call from their own gunicorn or uvicorn set-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ccobs.multiprocess import forget_dead_workers, prepare_multiprocess_dir


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_prepare_creates_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    prepare_multiprocess_dir(path)
    assert path.is_dir()


def test_prepare_removes_a_previous_runs_files_and_nothing_else(tmp_path: Path) -> None:
    for name in ("counter_123.db", "gauge_livesum_123.db", "histogram_9.db"):
        (tmp_path / name).write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("kept")
    prepare_multiprocess_dir(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_prepare_handles_glob_characters_in_the_path(tmp_path: Path) -> None:
    path = tmp_path / "run[1]*"
    path.mkdir()
    (path / "counter_1.db").write_bytes(b"old")
    prepare_multiprocess_dir(path)
    assert list(path.iterdir()) == []


def test_forget_drops_live_gauge_files_of_dead_workers_only(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    for pid in (dead, alive):
        for name in (f"gauge_livesum_{pid}.db", f"gauge_liveall_{pid}.db", f"counter_{pid}.db"):
            (tmp_path / name).write_bytes(b"")
    forget_dead_workers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f"counter_{dead}.db",  # its counts were served: they stay
            f"counter_{alive}.db",
            f"gauge_liveall_{alive}.db",
            f"gauge_livesum_{alive}.db",
        ]
    )


def test_forget_leaves_files_without_a_pid_alone(tmp_path: Path) -> None:
    (tmp_path / "gauge_livesum_x.db").write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["gauge_livesum_x.db"]
