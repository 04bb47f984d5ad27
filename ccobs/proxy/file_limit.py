"""The open-file limit a proxy holding thousands of streams needs, raised at start.

Every stream the proxy relays holds two sockets (the client's and the
upstream's). Many systems start a process with a soft ``RLIMIT_NOFILE`` of
1024, so around 500 concurrent streams the proxy's ``accept`` fails with
``EMFILE`` and new clients hang, while the hard limit, which an unprivileged
process may raise its soft limit to, is usually far higher. ``ccobs proxy``
raises its soft limit to the hard one before uvicorn starts; ``--workers``
processes inherit it.
"""

from __future__ import annotations

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return (before, after).

    Never fails: where the limit cannot be read or raised (another OS, a
    refusal), the process keeps what it had and both values are equal.
    """
    if resource is None:  # pragma: no cover
        return (-1, -1)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - getrlimit does not fail on Linux
        return (-1, -1)
    if hard == resource.RLIM_INFINITY or soft == hard:
        # An unlimited hard limit cannot be a soft one on every system; leave it.
        return (soft, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return (soft, soft)
    return (soft, hard)
