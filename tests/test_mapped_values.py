"""Recording under multiprocess mode writes what prometheus_client's own calls write.

Under ``PROMETHEUS_MULTIPROC_DIR`` ccobs records through ``mapped_add`` and
``mapped_observe`` (``ccobs.prometheus_internals``): the value's own lock, float and
16 bytes of its file, without prometheus_client's process-id check on every update
(a fork is noticed by ``os.register_at_fork`` instead). A child interpreter (the
mode is chosen when prometheus_client is imported) records the same amounts into
twin families, one through ccobs's operations and one through ``inc``/``observe``,
grows the file past its first mapping, forks, and reports what the workers' files
aggregate to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

CHILD = textwrap.dedent(
    """
    import json, os, sys, tempfile
    directory = tempfile.mkdtemp(prefix="ccobs-mapped-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    from ccobs.prometheus_internals import fast_inc, fast_observe

    def exposed():
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        samples = {}
        for family in registry.collect():
            for s in family.samples:
                name = s.name.replace("ours", "theirs")
                samples.setdefault(f"{name}{sorted(s.labels.items())}", []).append(s.value)
        return samples

    ours_c, theirs_c = (Counter(n, "c", ["a"]) for n in ("ours", "theirs"))
    ours_h, theirs_h = (Histogram(n + "_seconds", "h", ["a"]) for n in ("ours", "theirs"))
    inc, observe = fast_inc(ours_c.labels("x")), fast_observe(ours_h.labels("x"))
    amounts = [0.0, 1, 2.5, 0.001, 7, 100.0, 1e9, 0.25]
    for amount in amounts:
        inc(amount); theirs_c.labels("x").inc(amount)
        observe(amount); theirs_h.labels("x").observe(amount)
    for i in range(2000):  # past the file's first 1 MiB mapping: it is mapped again
        Counter(f"filler_{i}_" + "f" * 400, "f").inc()
    inc(3); theirs_c.labels("x").inc(3); observe(3); theirs_h.labels("x").observe(3)
    before_fork = exposed()
    late = Counter("late", "made before the fork, its operation after", ["a"]).labels("x")
    pid = os.fork()
    if pid == 0:
        fast_inc(late)(5)  # first: nothing has moved the values to this process's file yet
        inc(5); theirs_c.labels("x").inc(5); observe(5); theirs_h.labels("x").observe(5)
        os._exit(0)
    os.waitpid(pid, 0)
    late.inc(1)
    print(json.dumps({
        "ops": [inc.__qualname__, observe.__qualname__],
        "before_fork": before_fork,
        "after_fork": exposed(),
        "files": sorted(os.listdir(directory)),
    }))
    """
)


@pytest.fixture(scope="module")
def child() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def twins_differ(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    """Samples whose ccobs-recorded value differs from the prometheus_client-recorded one."""
    return {
        key: values
        for key, values in samples.items()
        if key.startswith("theirs") and (len(values) != 2 or values[0] != values[1])
    }


def test_multiprocess_values_are_recorded_through_the_mapped_operations(
    child: dict[str, Any],
) -> None:
    assert child["ops"] == ["mapped_add.<locals>.inc", "mapped_observe.<locals>.observe"]


def test_mapped_operations_write_what_inc_and_observe_write(child: dict[str, Any]) -> None:
    assert twins_differ(child["before_fork"]) == {}
    assert (
        child["before_fork"]["theirs_total[('a', 'x')]"] == [pytest.approx(1_000_000_113.751)] * 2
    )


def test_after_a_fork_the_child_writes_its_own_file_and_the_sums_still_agree(
    child: dict[str, Any],
) -> None:
    assert twins_differ(child["after_fork"]) == {}
    assert child["after_fork"]["theirs_total[('a', 'x')]"] == [pytest.approx(1_000_000_118.751)] * 2
    assert len([name for name in child["files"] if name.startswith("counter_")]) == 2


def test_an_operation_built_after_a_fork_writes_the_childs_own_file(
    child: dict[str, Any],
) -> None:
    assert child["after_fork"]["late_total[('a', 'x')]"] == [6.0]
