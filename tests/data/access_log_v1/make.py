"""Write the access-log databases of schema v1 (before the attribution columns) and their answers.

Run with the code of the commit that still wrote that schema, never with the
current one (the point is a file the current code did not write)::

    git worktree add /tmp/ccobs-v1 9178097
    PYTHONPATH=/tmp/ccobs-v1 python tests/data/access_log_v1/make.py tests/data/access_log_v1

It writes ``v1.db.gz`` and ``v1.duckdb.gz`` (gzip: a DuckDB file is mostly
empty blocks) and ``expected.json``: what that code answered on them, which
``tests/test_access_log_migration.py`` holds the current code to.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ccobs.access_log import LogFilter, open_access_log, open_reader
from ccobs.storage import AccessLogRecord

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def records() -> list[AccessLogRecord]:
    rng = random.Random(17)
    return [
        AccessLogRecord(
            request_id=f"v1-{n:04d}",
            timestamp=START + timedelta(hours=6) * rng.random(),
            duration_ms=rng.lognormvariate(6.0, 1.0),
            method="POST",
            endpoint="/v1/messages",
            model=rng.choice(["claude-sonnet-4-6", "claude-haiku-4-5", None]),
            status=rng.choice([200, 200, 200, 429, 500]),
            service_type="proxy_service",
            error_type=rng.choice([None, None, None, "upstream_500"]),
            input_tokens=rng.randint(0, 5000),
            output_tokens=rng.randint(0, 500),
            cost_total_usd=rng.randint(0, 4096) / 1024,
        )
        for n in range(300)
    ]


def main(out: Path) -> None:
    print("writing with", sys.modules["ccobs"].__file__)
    expected: dict[str, object] = {}
    for suffix in (".db", ".duckdb"):
        path = out / f"v1{suffix}"
        with open_access_log(path, retention_days=36_500) as store:
            for record in records():
                store.store(record)
        reader = open_reader(path)
        whole = LogFilter(start=START - timedelta(hours=1), end=START + timedelta(hours=7))
        part = LogFilter(start=START + timedelta(minutes=20), end=START + timedelta(hours=4))
        expected[suffix] = {
            "newest": reader.query(LogFilter(limit=5)),
            "analytics": reader.analytics(whole),
            "analytics_part_status_200": reader.analytics(
                LogFilter(start=part.start, end=part.end, status=200)
            ),
        }
        with (
            (out / f"v1{suffix}.gz").open("wb") as file,
            gzip.GzipFile(fileobj=file, mode="wb", mtime=0) as packed,
        ):
            packed.write(path.read_bytes())
        for leftover in out.glob(f"v1{suffix}*"):
            if leftover.suffix != ".gz":
                leftover.unlink()
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
