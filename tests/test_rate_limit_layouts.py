"""Answers of a known layout leave the same gauges and counts as the reference reader.

``RateLimitGauges.set_from_headers`` recognises an answer's header names as a
whole (a layout, ``ccobs.rate_limit_layouts``) and, in process, applies only
the values that moved since the last answer of the same key alias. Here
sequences of answers repeat a few layouts with values kept, changed,
malformed or missing, for several key aliases, while the clock moves (past a
year too, where a reset that did not change becomes one to refuse); after
every answer the gauges and rejected counts must equal what
``record_headers`` (``read_rate_limits`` and ``record``) leaves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rate_limit_headers import ANTHROPIC, NOW, OPENAI, UNIFIED, GaugeSide, raw

from ccobs.rate_limit_layouts import MAX_LAYOUTS, LayoutTable

Headers = list[tuple[bytes, bytes]]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


STREAMED = {**ANTHROPIC, "cache-control": "no-cache"}
LAYOUTS: list[dict[str, str]] = [
    {"date": "Fri", "server": "uvicorn", **ANTHROPIC, "content-length": "387"},
    {"date": "Fri", "server": "uvicorn", **STREAMED},
    {"date": "Fri", **OPENAI},
    {**UNIFIED, "retry-after": "3"},
    {"x-ratelimit-remaining-requests": "9", "anthropic-ratelimit-requests-remaining": "8"},
    {"content-type": "application/json"},
    {"anthropic-ratelimit-requests-limit": "5", "anthropic-ratelimit-tokens-reset": "soon"},
]
"""Header sets as an upstream repeats them: Anthropic's (whole and streamed), OpenAI's, the
subscription's with a retry-after, both vendors at once, none, and a short one."""
VALUES = [
    b"4000",
    b"3999",
    b" 42 ",
    b"-1",
    b"lots",
    b"",
    b"1e3",
    b"0.82",
    b"NaN",
    b"2026-12-04T16:30:01Z",
    b"2026-12-04T16:31:00Z",
    b"2027-12-05T16:30:01Z",
    b"3026-12-04T16:30:01Z",
    b"6m0s",
    b"1s",
    b"8784h",
    str(int(NOW) + 7200).encode(),
    str(int(NOW) + 300 * 86400).encode(),
    b"allowed",
    b"rejected",
]
STEPS = [0.0, 0.0, 1.0, 60.0, 200 * 86400.0, -200 * 86400.0]
"""Clock moves between answers: none, seconds, and far enough that resets leave the year."""

answer = st.tuples(
    st.integers(0, len(LAYOUTS) - 1),
    st.sampled_from([None, "team-a", "team-b"]),
    st.sampled_from(STEPS),
    st.dictionaries(st.integers(0, 16), st.sampled_from(VALUES), max_size=4),
    st.sampled_from([None, b"ANTHROPIC-RATELIMIT-REQUESTS-LIMIT", b"x-other"]),
)


def replay(answers: list[Any]) -> tuple[GaugeSide, GaugeSide, list[Any]]:
    """Both sides fed ``answers``; the samples of both after each answer."""
    clock = Clock()
    reference, fast = GaugeSide(clock), GaugeSide(clock)
    current = [raw(headers) for headers in LAYOUTS]
    seen = []
    for index, alias, step, changes, renamed in answers:
        clock.now += step
        headers = current[index]
        for position, value in changes.items():
            if position < len(headers):
                headers[position] = (headers[position][0], value)
        sent = list(headers)
        if renamed is not None and sent:  # another name in the same place: another layout
            sent[0] = (renamed, sent[0][1])
        reference.gauges.record_headers(sent, alias)
        fast.gauges.set_from_headers(sent, alias)
        seen.append((fast.samples(), reference.samples()))
    return reference, fast, seen


@settings(max_examples=300, deadline=None)
@given(st.lists(answer, min_size=1, max_size=12))
def test_repeated_layouts_leave_the_same_gauges_and_counts_after_every_answer(
    answers: list[Any],
) -> None:
    reference, fast, seen = replay(answers)

    for fast_samples, reference_samples in seen:
        assert fast_samples == reference_samples
    assert fast.overflows == reference.overflows


def test_a_reset_repeated_a_year_later_is_refused_as_the_reference_refuses_it() -> None:
    one_step: list[Any] = [(0, "team-a", 0.0, {}, None)]
    later: list[Any] = [(0, "team-a", 200 * 86400.0, {}, None)] * 2

    _reference, fast, seen = replay(one_step + later)

    assert seen[-1][0] == seen[-1][1]
    rejected = [v for (name, labels), v in fast.samples().items() if "rejected" in name]
    assert sum(rejected) > 0  # the resets, unchanged, went out of reach and were refused


def test_an_unchanged_value_is_not_written_again() -> None:
    """What lets the fast path skip work: a value equal to the last one is left alone
    (so a gauge changed behind ccobs's back keeps the change until the value moves)."""
    side = GaugeSide(Clock())
    headers = raw(ANTHROPIC)
    side.gauges.set_from_headers(list(headers), "team-a")
    read = side.registry.get_sample_value
    labels = {"api": "anthropic", "limit": "requests", "key_alias": "team-a"}
    family: Any = side.gauges._families.ratelimit_limit
    family.labels("anthropic", "requests", "team-a").set(1.0)

    side.gauges.set_from_headers(list(headers), "team-a")
    unchanged = read("ccproxy_ratelimit_limit", labels)
    moved = [
        (name, b"4001" if name == b"anthropic-ratelimit-requests-limit" else value)
        for name, value in headers
    ]
    side.gauges.set_from_headers(moved, "team-a")
    changed = read("ccproxy_ratelimit_limit", labels)

    assert (unchanged, changed) == (1.0, 4001.0)


def test_a_second_thread_makes_every_thread_write_every_value() -> None:
    side = GaugeSide(Clock())
    headers = raw(OPENAI)
    labels = {"api": "openai", "limit": "requests", "key_alias": "none"}
    side.gauges.set_from_headers(list(headers), None)
    other = [(n, b"7" if n == b"x-ratelimit-limit-requests" else v) for n, v in headers]
    thread = threading.Thread(target=side.gauges.set_from_headers, args=(other, None))
    thread.start()
    thread.join()

    side.gauges.set_from_headers(list(headers), None)  # the first thread's values again

    assert side.registry.get_sample_value("ccproxy_ratelimit_limit", labels) == 60.0


def test_the_layouts_stay_bounded() -> None:
    table = LayoutTable()
    for i in range(3 * MAX_LAYOUTS):
        headers = [(f"x-{i}".encode(), b"1"), (b"x-ratelimit-limit-requests", b"5")]
        table.find(b"\n".join(name for name, _ in headers), headers)

    assert 0 < len(table._layouts) <= MAX_LAYOUTS


def test_names_holding_a_newline_are_never_taken_for_another_layout() -> None:
    side, reference = GaugeSide(Clock()), GaugeSide(Clock())
    answers: list[Headers] = [
        [(b"x-ratelimit-limit-requests", b"5"), (b"a", b"1")],
        [(b"x-ratelimit-limit-requests\na", b"1"), (b"x-ratelimit-limit-tokens", b"9")],
    ]
    for headers in answers:
        side.gauges.set_from_headers(headers, None)
        reference.gauges.record_headers(headers, None)

    assert side.samples() == reference.samples()


CHILD = textwrap.dedent(
    """
    import json, os, sys, tempfile
    directory = tempfile.mkdtemp(prefix="ccobs-ratelimit-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    from ccobs.metric_families import MetricFamilies
    from ccobs.rate_limit_metrics import RateLimitGauges
    from ccobs.settings import ObservabilitySettings

    before, in_another_process, after = json.loads(sys.stdin.read())
    sides = []
    for namespace in ("reference", "fast"):
        families = MetricFamilies(namespace, CollectorRegistry(), ObservabilitySettings())
        sides.append(RateLimitGauges(families, 64, lambda label: None, clock=lambda: 1.78e9))
    reference, fast = sides

    def send(answers):
        for headers, alias in answers:
            headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
            reference.record_headers(headers, alias)
            fast.set_from_headers(headers, alias)

    send(before)
    pid = os.fork()
    if pid == 0:  # another worker: its newer values are shown until this one writes again
        send(in_another_process)
        os._exit(0)
    os.waitpid(pid, 0)
    send(after)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    samples = {"reference": {}, "fast": {}}
    for family in registry.collect():
        side, _, name = family.name.partition("_")
        for s in family.samples:
            if "ratelimit" in name:
                samples[side][name + str(sorted(s.labels.items()))] = s.value
    print(json.dumps(samples))
    """
)


def test_under_multiprocess_mode_the_files_hold_what_the_reference_writes() -> None:
    """Values live in files there and the newest write of any process is shown, so
    every value is written on every answer: the files must say what the reference's do."""
    anthropic = list(ANTHROPIC.items())
    moved = [(n, "3000" if "ratelimit" in n and "reset" not in n else v) for n, v in anthropic]
    before = [
        (anthropic, "team-a"),
        (anthropic, "team-a"),
        (moved, "team-a"),
        (anthropic, None),
        (list(OPENAI.items()), "team-a"),
        (anthropic, "team-a"),
    ]
    in_another_process = [(moved, "team-a"), (moved, None)]
    after = [(anthropic, "team-a"), (anthropic, None)]
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps([before, in_another_process, after]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    samples = json.loads(done.stdout)

    assert samples["fast"] == samples["reference"]
    assert len(samples["fast"]) > 20
