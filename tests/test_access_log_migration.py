"""A database written before the attribution columns opens, answers as before, and takes them.

The files under ``tests/data/access_log_v1/`` were written by the code of
the commit that still wrote that schema (``make.py`` there says how), and
``expected.json`` holds what that code answered on them: the current code
must answer the same, read-only before any writer opened the file, and
after a writer has added the columns and upgraded the rollup.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ccobs.access_log import LogFilter, open_access_log, open_reader
from ccobs.access_log.columns import COLUMNS
from ccobs.storage import AccessLogRecord

DATA = Path(__file__).parent / "data" / "access_log_v1"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WHOLE = LogFilter(start=START - timedelta(hours=1), end=START + timedelta(hours=7))
PART_200 = LogFilter(
    start=START + timedelta(minutes=20), end=START + timedelta(hours=4), status=200
)
NEW_FIELDS = dict.fromkeys(
    (
        "stop_reason",
        "team",
        "key_alias",
        "key_fingerprint",
        "client_app",
        "session_id",
        "upstream_request_id",
    )
)
KEEP = 36_500.0  # days: the files' records are from 2026-12-01 and must not be pruned


def v1_database(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"v1{suffix}"
    path.write_bytes(gzip.decompress((DATA / f"v1{suffix}.gz").read_bytes()))
    return path


def expected(suffix: str) -> dict[str, Any]:
    answers: dict[str, Any] = json.loads((DATA / "expected.json").read_text())[suffix]
    new_filters = dict.fromkeys(("team", "key_alias", "client_app", "session_id"))
    for name in ("analytics", "analytics_part_status_200"):
        answers[name]["filters"] = {**answers[name]["filters"], **new_filters}
    answers["newest"] = [{**row, **NEW_FIELDS} for row in answers["newest"]]
    return answers


def table_columns(path: Path, suffix: str) -> list[str]:
    if suffix == ".db":
        with sqlite3.connect(path) as conn:
            return [row[1] for row in conn.execute("PRAGMA table_info(access_log)")]
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info('access_log')").fetchall()]


def test_the_fixture_has_the_schema_before_the_attribution_columns(tmp_path: Path) -> None:
    columns = table_columns(v1_database(tmp_path, ".db"), ".db")
    assert "team" not in columns
    assert len(columns) == len(COLUMNS) - len(NEW_FIELDS)


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_a_v1_database_answers_as_before_when_read_before_any_writer_opened_it(
    tmp_path: Path, suffix: str
) -> None:
    reader = open_reader(v1_database(tmp_path, suffix))
    answers = expected(suffix)
    assert reader.query(LogFilter(limit=5)) == answers["newest"]
    assert reader.analytics(WHOLE) == answers["analytics"]
    assert reader.analytics(PART_200) == answers["analytics_part_status_200"]


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_a_v1_database_filtered_by_team_before_the_migration_matches_nothing(
    tmp_path: Path, suffix: str
) -> None:
    reader = open_reader(v1_database(tmp_path, suffix))
    assert reader.query(LogFilter(team="platform")) == []
    by_team = reader.analytics(WHOLE, group_by="team")
    assert [group["team"] for group in by_team["groups"]] == [None]
    assert by_team["totals"] == expected(suffix)["analytics"]["totals"]


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_a_writer_adds_the_columns_and_the_old_answers_stay(tmp_path: Path, suffix: str) -> None:
    path = v1_database(tmp_path, suffix)
    with open_access_log(path, retention_days=KEEP) as store:
        assert store.flush()
    assert table_columns(path, suffix)[-len(NEW_FIELDS) :] == list(NEW_FIELDS)
    reader = open_reader(path)
    answers = expected(suffix)
    assert reader.query(LogFilter(limit=5)) == answers["newest"]
    assert reader.analytics(WHOLE) == answers["analytics"]  # from the upgraded rollup
    assert reader.analytics(WHOLE, use_rollup=False) == answers["analytics"]
    assert reader.analytics(PART_200) == answers["analytics_part_status_200"]


@pytest.mark.parametrize("suffix", [".db", ".duckdb"])
def test_a_migrated_database_keeps_new_records_with_their_attribution(
    tmp_path: Path, suffix: str
) -> None:
    path = v1_database(tmp_path, suffix)
    with open_access_log(path, retention_days=KEEP) as store:
        for n in range(10):
            store.store(
                AccessLogRecord(
                    request_id=f"new-{n}",
                    timestamp=START + timedelta(hours=2, minutes=n),
                    duration_ms=50.0,
                    model="claude-sonnet-4-6",
                    status=200,
                    cost_total_usd=0.5,
                    team="platform",
                    key_alias="alice",
                    client_app="claude-code",
                    session_id=f"session-{n % 2}",
                )
            )
        assert store.flush()
        rows = store.query(LogFilter(team="platform", limit=100))
        by_team = store.analytics(WHOLE, group_by="team")
        assert by_team == store.analytics(WHOLE, group_by="team", use_rollup=False)
    old_totals = expected(suffix)["analytics"]["totals"]
    assert {row["request_id"] for row in rows} == {f"new-{n}" for n in range(10)}
    assert {row["key_alias"] for row in rows} == {"alice"}
    assert [(g["team"], g["requests"]) for g in by_team["groups"]] == [
        (None, old_totals["requests"]),
        ("platform", 10),
    ]
