"""The limit of ``ccobs proxy`` in concurrent streams, observed rather than worked out.

``python -m benchmarks.streams --find-limit`` ramps the number of streams, one
stamped event every ``--interval`` (50 ms), through each worker count in turn
(200, 400, 600, ... by default) until a run breaks down, and reports the last N
that held. A run breaks down (:func:`breakdown`) when

- any stream failed, hung or did not end within the load generator's wait, or
  a finished stream's tokens were miscounted, or the last stream ended more
  than ``LATE_LIMIT_SECONDS`` after its schedule (events were sent or relayed
  late: a stamp is taken when the upstream sends, so an upstream starved of
  CPU by the proxy beside it sends late without the delay showing it); or
- the added delay (stamp to client through the proxy, minus the same N straight
  at the upstream) shows queueing: its p50 over ``ADDED_P50_LIMIT_MS`` (the
  typical event waits: the proxy no longer relays each event as it comes;
  ``--max-added-p50-ms`` sets it), or
  its p99 over ``max_added_p99_ms`` (``ADDED_P99_LIMIT_MS`` by default; on a
  machine shared with other work, preemption alone puts the p99 past 100 ms at
  a few hundred streams, so ``--max-added-p99-ms`` can raise it).

Each N is first run straight at the upstream (``direct``, once per N, shared by
every worker count): when that itself breaks down, the upstream and the load
generator, which share the same two cores, have reached their limit before the
proxy, and the search stops there saying so. The streams are shorter than the
fixed-N runs' (``--duration``, 10 s by default) so that the whole search fits in
about ten minutes; a time budget stops it early, saying where.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from benchmarks.streams import Bench

ADDED_P99_LIMIT_MS = 100.0
"""Added delay p99 past which the proxy is past its limit, by default: events queue."""
LATE_LIMIT_SECONDS = 2.0
"""How late the last stream may end (``late_seconds``) before the run broke down."""
ADDED_P50_LIMIT_MS = 50.0
"""Added delay p50 past which the proxy is past its limit: the typical event queues."""


def breakdown(
    run: dict[str, Any],
    direct: dict[str, Any] | None,
    max_added_p99_ms: float = ADDED_P99_LIMIT_MS,
    max_added_p50_ms: float = ADDED_P50_LIMIT_MS,
) -> str | None:
    """Why ``run`` is past the limit, or None when it held."""
    if run.get("hung"):
        return "the load generator hung"
    if run["failed"] or run["completed"] != run["streams"]:
        reasons = ", ".join(f"{count} {why}" for why, count in run["failed"].items())
        return f"{run['streams'] - run['completed']} streams failed ({reasons})"
    if run.get("miscounted_tokens", 0) != 0:
        return f"tokens miscounted by {run['miscounted_tokens']:+.0f}"
    if run.get("late_seconds", 0.0) > LATE_LIMIT_SECONDS:
        return f"the last stream ended {run['late_seconds']:.1f} s late"
    if direct is not None:
        added50 = run["delay_ms"]["p50"] - direct["delay_ms"]["p50"]
        if added50 > max_added_p50_ms:
            return f"added delay p50 {added50:.0f} ms > {max_added_p50_ms:.0f} ms"
        added = run["delay_ms"]["p99"] - direct["delay_ms"]["p99"]
        if added > max_added_p99_ms:
            return f"added delay p99 {added:.0f} ms > {max_added_p99_ms:.0f} ms"
    return None


def find_limits(
    b: Bench,
    workers: Sequence[int],
    counts: Sequence[int],
    budget_seconds: float,
    data: dict[str, Any],
    max_added_p99_ms: float = ADDED_P99_LIMIT_MS,
    max_added_p50_ms: float = ADDED_P50_LIMIT_MS,
) -> dict[str, Any]:
    """Ramp ``counts`` through each worker count until it breaks; fills ``data["runs"]``."""
    deadline = time.monotonic() + budget_seconds
    limits: dict[str, Any] = {}
    for w in workers:
        route = f"workers_{w}"
        found: dict[str, Any] = {"held": None, "broke_at": None, "why": None}
        limits[route] = found
        for n in counts:
            if time.monotonic() > deadline:
                found["why"] = f"time budget ({budget_seconds:.0f} s) spent before {n} streams"
                break
            runs = data["runs"].setdefault(str(n), {})
            if "direct" not in runs:
                runs["direct"] = b.measure(n, "direct")
            direct_broke = breakdown(runs["direct"], None)
            if direct_broke is None and runs["direct"]["delay_ms"]["p99"] > max_added_p99_ms:
                direct_broke = f"delay p99 {runs['direct']['delay_ms']['p99']:.0f} ms direct"
            if direct_broke is not None:
                found.update(
                    broke_at=n, why=f"the upstream and load generator first: {direct_broke}"
                )
                break
            runs[route] = b.measure(n, route)
            why = breakdown(runs[route], runs["direct"], max_added_p99_ms, max_added_p50_ms)
            if why is not None:
                found.update(broke_at=n, why=why)
                break
            found["held"] = n
    return limits


def summary(limits: dict[str, Any]) -> list[str]:
    """One line per worker count: the last N that held, and why the next one did not."""
    lines = []
    for route, found in limits.items():
        held = f"{found['held']} streams held" if found["held"] is not None else "nothing held"
        broke = f"; {found['broke_at']} broke down: {found['why']}" if found["broke_at"] else ""
        if found["broke_at"] is None and found["why"]:
            broke = f"; {found['why']}"
        elif found["broke_at"] is None:
            broke = "; the largest N tried held"
        lines.append(f"- {route.replace('_', ' ')}: {held}{broke}.")
    return lines
