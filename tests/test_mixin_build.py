"""The committed dashboards/ and alerts/ are exactly a fresh default build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccobs.mixin.build import build
from ccobs.mixin.config import BurnRateWindow, MixinConfig

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
    assert sorted(committed) == sorted(fresh), "run: ccobs mixin build --out ."
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert stale == [], "run: ccobs mixin build --out ."


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


def mixin_build(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccobs.cli", "mixin", "build", "--config", str(config),
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_unknown_mixin_config_field_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text("namespace: gateway\nthreshold_typo: 3\n")

    result = mixin_build(config, tmp_path / "out")

    assert result.returncode == 2
    assert "threshold_typo" in result.stderr


def test_missing_mixin_config_is_an_error_naming_the_file(tmp_path: Path) -> None:
    result = mixin_build(tmp_path / "missing.yaml", tmp_path / "out")

    assert result.returncode == 2
    assert "missing.yaml" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("latency_p99_seconds: fast\n", "latency_p99_seconds"),
        ("error_ratio_slo: true\n", "error_ratio_slo"),
        ("dashboard_tags: ccobs\n", "dashboard_tags"),
        ("alert_prefix: 3\n", "alert_prefix"),
        ("burn_rate_windows: [{long: 1h, short: 5m}]\n", "burn_rate_windows"),
        ("burn_rate_windows: 4\n", "burn_rate_windows"),
        ("latency_window: soon\n", "latency_window"),
        ("namespace: [a\n", "not valid YAML"),
    ],
)
def test_mixin_config_of_the_wrong_type_is_an_error_naming_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text(text)

    result = mixin_build(config, tmp_path / "out")

    assert result.returncode == 2, result.stderr
    assert field in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr


def test_mixin_config_numbers_and_windows_from_yaml_are_used(tmp_path: Path) -> None:
    config = tmp_path / "mixin.yaml"
    config.write_text(
        "latency_p99_seconds: 30\n"
        "burn_rate_windows: [{long: 2h, short: 10m, factor: 10, severity: critical, for: 5m}]\n"
    )

    loaded = MixinConfig.from_yaml(config)

    assert loaded.latency_p99_seconds == 30.0
    assert loaded.burn_rate_windows == (BurnRateWindow("2h", "10m", 10.0, "critical", "5m"),)
