"""Who spent, from the access log: analytics by team, key alias, client app and session.

Records are stored through the real stores (SQLite, DuckDB) with their
attribution fields set directly, as the proxy sets them; the answers are
held to the raw records: the rollup's to a raw scan, the sessions' to a
sum in Python over the records stored.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_server import serve_asgi
from starlette.applications import Starlette
from test_access_log import BASE, HOUR, MODEL, NOW, random_filters, record
from test_cli import ccobs

from ccobs.access_log import LogFilter, SQLiteAccessLog, open_access_log, open_reader
from ccobs.access_log.api import access_log_routes
from ccobs.access_log.breakdown import GROUPS
from ccobs.access_log.columns import COLUMNS
from ccobs.access_log.query import to_row
from ccobs.storage import AccessLogRecord

TOKEN = "logs-t0ken"
AUTH = {"authorization": f"Bearer {TOKEN}"}
TEAMS = ("platform", "research", "unassigned", None)
ALIASES = ("alice", "bob", "key-9f2c4e1a", "anonymous", None)
APPS = ("claude-code", "codex", "curl", "other", None)


def attributed_records(rng: random.Random, n: int, start: datetime, span: timedelta) -> list[Any]:
    """Records with every attribution field varied, NULLs among them; binary-fraction costs."""
    return [
        record(
            i,
            timestamp=start + span * rng.random(),
            model=rng.choice([MODEL, "claude-haiku-4-5", None]),
            status=rng.choice([200, 200, 500, None]),
            error_type=rng.choice([None, None, "upstream_500"]),
            duration_ms=rng.lognormvariate(6.0, 1.0),
            input_tokens=rng.randint(0, 5000),
            output_tokens=rng.randint(0, 500),
            cost_total_usd=rng.randint(0, 4096) / 1024,
            team=rng.choice(TEAMS),
            key_alias=rng.choice(ALIASES),
            client_app=rng.choice(APPS),
            session_id=rng.choice([None, *(f"session-{k}" for k in range(40))]),
        )
        for i in range(n)
    ]


def attribution_filters(rng: random.Random, count: int) -> list[LogFilter]:
    """The rollup tests' ranges and filters, with team, key alias and client app filters too."""
    filters = []
    for flt in random_filters(rng, count):
        filters.append(
            LogFilter(
                start=flt.start,
                end=flt.end,
                model=flt.model,
                status=flt.status,
                team=rng.choice([None, None, "platform", "nobody"]),
                key_alias=rng.choice([None, None, "alice"]),
                client_app=rng.choice([None, None, "claude-code"]),
            )
        )
    return filters


@pytest.fixture(scope="module", params=[".db", ".duckdb"])
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, list[Any]]]:
    """A store of either backend holding 2,000 attributed records over 8 hours, and those.

    Shared by the tests of this module, which only read it."""
    records = attributed_records(random.Random(17), 2000, BASE, 8 * HOUR)
    path = tmp_path_factory.mktemp("attributed") / f"access{request.param}"
    with open_access_log(path, batch_size=499) as store:
        for rec in records:
            store.store(rec)
        assert store.flush()
        yield store, records


# -- grouped analytics -------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["model", "team", "key_alias", "client_app"])
def test_grouped_analytics_from_the_rollup_equal_a_scan_of_the_raw_records(
    filled: tuple[Any, list[Any]], group: str
) -> None:
    store, _ = filled
    for flt in attribution_filters(random.Random(18), 25):
        expected = store.analytics(flt, group_by=group, use_rollup=False)
        assert store.analytics(flt, group_by=group) == expected, flt


def test_team_key_and_client_app_filters_from_the_rollup_equal_a_raw_scan(
    filled: tuple[Any, list[Any]],
) -> None:
    store, _ = filled
    for flt in attribution_filters(random.Random(19), 25):
        assert store.analytics(flt) == store.analytics(flt, use_rollup=False), flt


def test_spend_per_team_is_the_sum_of_the_records_costs(filled: tuple[Any, list[Any]]) -> None:
    store, records = filled
    spend: dict[str | None, float] = {}
    for rec in records:
        spend[rec.team] = spend.get(rec.team, 0.0) + rec.cost_total_usd

    result = store.analytics(LogFilter(), group_by="team")

    assert {g["team"]: g["cost_usd"] for g in result["groups"]} == {
        team: round(cost, 9) for team, cost in spend.items()
    }
    assert [g["cost_usd"] for g in result["groups"]] == sorted(
        (round(cost, 9) for cost in spend.values()), reverse=True
    )
    assert result["totals"]["requests"] == len(records)


def test_the_most_expensive_sessions_of_a_client_app_are_ranked_from_the_raw_records(
    filled: tuple[Any, list[Any]],
) -> None:
    store, records = filled
    start = BASE + 2 * HOUR + timedelta(minutes=13)
    chosen = [r for r in records if r.client_app == "claude-code" and r.timestamp >= start]
    spend: dict[str | None, float] = {}
    for rec in chosen:
        spend[rec.session_id] = spend.get(rec.session_id, 0.0) + rec.cost_total_usd
    expected = sorted(spend.items(), key=lambda kv: (-kv[1], kv[0] is not None, kv[0] or ""))

    flt = LogFilter(start=start, client_app="claude-code")
    result = store.analytics(flt, group_by="session", top=10)

    assert [(g["session_id"], g["cost_usd"]) for g in result["groups"]] == [
        (session, round(cost, 9)) for session, cost in expected[:10]
    ]
    assert result["totals"]["requests"] == len(chosen)
    assert result["totals"] == store.analytics(flt)["totals"]


def test_each_session_group_counts_its_own_requests_and_tokens(
    filled: tuple[Any, list[Any]],
) -> None:
    store, records = filled
    result = store.analytics(LogFilter(), group_by="session", top=3)

    for group in result["groups"]:
        mine = [r for r in records if r.session_id == group["session_id"]]
        assert group["requests"] == len(mine)
        assert group["input_tokens"] == sum(r.input_tokens for r in mine)
        assert group["errors"] == sum(r.error_type is not None for r in mine)


def test_top_keeps_the_most_expensive_groups_and_the_totals_of_all(
    filled: tuple[Any, list[Any]],
) -> None:
    store, records = filled
    every = store.analytics(LogFilter(), group_by="key_alias")
    top2 = store.analytics(LogFilter(), group_by="key_alias", top=2)

    assert len(every["groups"]) == len(ALIASES)
    assert top2["groups"] == every["groups"][:2]
    assert top2["totals"] == every["totals"]
    assert top2["totals"]["requests"] == len(records)


def test_a_session_filter_reads_the_raw_records_not_the_rollup(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SQLiteAccessLog(path) as s:
        for n in range(6):
            s.store(record(n, timestamp=BASE + n * HOUR / 2, team="platform", session_id="s-1"))
    with sqlite3.connect(path) as conn:  # behind the rollup's back
        conn.execute("DELETE FROM access_log")
    reader = open_reader(path)
    whole_hours = LogFilter(start=BASE, end=BASE + 3 * HOUR)

    def requests(flt: LogFilter) -> int:
        return int(reader.analytics(flt)["totals"]["requests"])

    assert requests(LogFilter(start=whole_hours.start, end=whole_hours.end, team="platform")) == 6
    assert requests(LogFilter(start=whole_hours.start, end=whole_hours.end, session_id="s-1")) == 0
    assert reader.analytics(whole_hours, group_by="session")["groups"] == []


def test_grouping_by_an_unknown_dimension_is_an_error_naming_the_choices(
    filled: tuple[Any, list[Any]],
) -> None:
    store, _ = filled
    with pytest.raises(ValueError, match=r"'user'.*team, key_alias, client_app, session"):
        store.analytics(LogFilter(), group_by="user")


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_pruning_keeps_the_grouped_rollup_equal_to_the_records_kept(
    tmp_path: Path, suffix: str
) -> None:
    rng = random.Random(20)
    now = datetime.now(UTC)
    with open_access_log(tmp_path / f"access{suffix}", retention_days=1.0 + 1 / 48) as s:
        for rec in attributed_records(rng, 800, now - timedelta(days=2), timedelta(days=2)):
            s.store(rec)
        assert s.flush()
        assert s.prune() > 0
        for group in ("team", "key_alias", "client_app"):
            kept = s.analytics(LogFilter(), group_by=group, use_rollup=False)
            assert s.analytics(LogFilter(), group_by=group) == kept, group
        assert 0 < kept["totals"]["requests"] < 800


# -- the record query ------------------------------------------------------------------------


def test_the_record_query_filters_by_team_key_alias_client_app_and_session(
    filled: tuple[Any, list[Any]],
) -> None:
    store, records = filled
    flt = LogFilter(team="platform", key_alias="alice", client_app="claude-code", limit=10_000)
    expected = {
        r.request_id
        for r in records
        if (r.team, r.key_alias, r.client_app) == ("platform", "alice", "claude-code")
    }

    rows = store.query(flt)
    sessions = store.query(LogFilter(session_id="session-3", limit=10_000))

    assert {row["request_id"] for row in rows} == expected
    assert {row["session_id"] for row in sessions} == {"session-3"}
    assert len(sessions) == sum(r.session_id == "session-3" for r in records)


def test_a_stored_row_holds_each_field_under_its_own_column() -> None:
    distinct: dict[str, Any] = {}
    for n, f in enumerate(fields(AccessLogRecord)):
        if f.name not in ("request_id", "timestamp", "duration_ms", "streaming"):
            distinct[f.name] = f"value-{n}" if "str" in str(f.type) else n + 0.5
    rec = AccessLogRecord(request_id="r", timestamp=NOW, duration_ms=12.0, **distinct)

    row = dict(zip(COLUMNS, to_row(rec, keep_client_info=True), strict=True))

    assert {name: row[name] for name in distinct} == distinct
    assert (row["request_id"], row["duration_ms"]) == ("r", 12.0)


# -- no key through the new fields --------------------------------------------------------------

KEY = "sk-ant-api03-" + "Zx9" * 30 + "-AbCdEfGh"
OPENAI_KEY = "sk-proj-" + "Q7w" * 20
TEXT_FIELDS = (
    "stop_reason",
    "team",
    "key_alias",
    "key_fingerprint",
    "client_app",
    "session_id",
    "upstream_request_id",
)


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_no_key_can_be_stored_through_the_attribution_fields(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"access{suffix}"
    shapes = (
        KEY,
        f"Bearer {KEY}",
        f"x-api-key: {KEY}",
        f"team {KEY}",
        f'"{KEY}"',
        f"t.{KEY}",
        OPENAI_KEY,
        f"Bearer {OPENAI_KEY}",
    )
    with open_access_log(path) as store:
        for n, shape in enumerate(shapes):
            metadata = dict.fromkeys(TEXT_FIELDS, shape)
            store.store(AccessLogRecord.from_metadata(f"r{n}", NOW, 10.0, metadata))
        assert store.flush()
        rows = store.query(LogFilter())
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())

    assert len(rows) == len(shapes)
    for fragment in ("Zx9Zx9Zx9", "Q7wQ7wQ7w"):
        assert fragment not in json.dumps(rows)
        assert fragment.encode() not in stored
    assert all(row[field] for row in rows for field in TEXT_FIELDS)  # redacted, not dropped


# -- the command line and the API ---------------------------------------------------------------


@pytest.fixture
def spend_db(tmp_path: Path) -> Path:
    path = tmp_path / "spend.db"
    with SQLiteAccessLog(path) as s:
        for n, (team, session, cost) in enumerate(
            [("platform", "a", 1.0), ("platform", "b", 4.0), ("research", "c", 2.5)] * 2
        ):
            s.store(
                record(
                    n,
                    timestamp=NOW,
                    team=team,
                    client_app="claude-code",
                    session_id=session,
                    cost_total_usd=cost,
                )
            )
    return path


def test_logs_analytics_by_team_gives_spend_per_team_most_first(spend_db: Path) -> None:
    result = ccobs("logs", "analytics", "--db", str(spend_db), "--since", "7d", "--by", "team")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [(g["team"], g["cost_usd"]) for g in answer["groups"]] == [
        ("platform", 10.0),
        ("research", 5.0),
    ]


def test_logs_analytics_by_session_keeps_the_top_n(spend_db: Path) -> None:
    result = ccobs(
        "logs", "analytics", "--db", str(spend_db), "--since", "7d",
        "--client-app", "claude-code", "--by", "session", "--top", "2",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [(g["session_id"], g["requests"]) for g in answer["groups"]] == [("b", 2), ("c", 2)]
    assert answer["totals"]["cost_usd"] == 15.0


def test_logs_query_shows_and_filters_the_attribution_fields(spend_db: Path) -> None:
    result = ccobs("logs", "query", "--db", str(spend_db), "--team", "research")

    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["team"], row["session_id"], row["client_app"]) for row in rows] == [
        ("research", "c", "claude-code")
    ] * 2


@pytest.fixture
def api(spend_db: Path) -> Iterator[str]:
    with SQLiteAccessLog(spend_db) as store:
        app = Starlette(routes=access_log_routes(store, TOKEN))
        with serve_asgi(app) as server:
            yield server.url


def test_the_analytics_api_groups_by_the_by_parameter(api: str) -> None:
    response = httpx.get(
        api + "/logs/analytics",
        params={"start": "7d", "by": "session", "top": "1", "team": "platform"},
        headers=AUTH,
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["group_by"] == "session"
    assert [(g["session_id"], g["cost_usd"]) for g in answer["groups"]] == [("b", 8.0)]
    assert answer["filters"]["team"] == "platform"


@pytest.mark.parametrize(
    ("params", "named"), [({"by": "user"}, "user"), ({"by": "team", "top": "0"}, "top")]
)
def test_a_bad_grouping_is_a_400_naming_it(api: str, params: dict[str, str], named: str) -> None:
    response = httpx.get(api + "/logs/analytics", params=params, headers=AUTH)

    assert response.status_code == 400
    assert named in response.json()["error"]


def test_every_grouping_is_offered_by_the_cli() -> None:
    result = ccobs("logs", "analytics", "--help")

    assert all(group in result.stdout for group in GROUPS)
