"""The committed dashboards/ and alerts/ are exactly a fresh default build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ccobs.mixin.build import build
from ccobs.mixin.config import MixinConfig

ROOT = Path(__file__).resolve().parent.parent
GENERATED_DIRS = ("dashboards", "alerts")


def committed_files() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for folder in GENERATED_DIRS
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file()
    }


def test_committed_files_equal_a_fresh_build() -> None:
    fresh = build(MixinConfig())

    committed = committed_files()
    assert sorted(committed) == sorted(fresh), "run: make generate"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], "run: make generate"


def test_cli_builds_another_namespace_into_a_folder(tmp_path: Path) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text('namespace: gateway\njob_selector: job="edge"\n')

    result = subprocess.run(
        [sys.executable, "-m", "ccobs.cli", "mixin", "build", "--config", str(config),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    texts = [p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert texts
    joined = "\n".join(texts)
    assert "gateway_requests_total" in joined
    assert "ccproxy_requests_total" not in joined


def test_unknown_mixin_config_field_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text("namespace: gateway\nthreshold_typo: 3\n")

    result = subprocess.run(
        [sys.executable, "-m", "ccobs.cli", "mixin", "build", "--config", str(config),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert "threshold_typo" in result.stderr
