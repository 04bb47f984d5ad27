"""Rewrite the generated tables of docs/reference.md (settings, metrics) from their sources in code.

Run after changing a setting or a metric: `python scripts/sync_readme.py`, or `make generate`
with the other generators. tests/test_readme.py fails while the page differs from what this
writes. The name is from when the tables were in the README; `make generate` calls it by it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ccobs.attribution_metrics import series_bound_markdown
from ccobs.catalog import metrics_table_markdown
from ccobs.metric_labels import LABEL_CAPS
from ccobs.settings import settings_table_markdown

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
SECTIONS = {
    "settings-table": settings_table_markdown,
    "metrics-table": metrics_table_markdown,
    "attribution-bound": lambda: series_bound_markdown(LABEL_CAPS),
}


def synced(text: str) -> str:
    for name, render in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{REFERENCE.name} has no <!-- {name}:start/end --> markers")
        text = pattern.sub(lambda m, r=render: m.group(1) + r() + m.group(2), text)
    return text


def main() -> int:
    REFERENCE.write_text(synced(REFERENCE.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
