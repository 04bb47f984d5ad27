"""The README's generated tables match the code they describe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_settings_and_metric_catalogue() -> None:
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "scripts/sync_readme.py")
    assert spec is not None
    assert spec.loader is not None
    sync_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync_readme)
    readme = (ROOT / "README.md").read_text()

    assert sync_readme.synced(readme) == readme, "run: make generate"
