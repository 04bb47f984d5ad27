"""ObservabilitySettings: defaults, YAML, CCOBS_* variables, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccobs.catalog import DEFAULT_DURATION_BUCKETS
from ccobs.settings import ObservabilitySettings, SettingsError


def test_defaults_work_without_any_configuration() -> None:
    settings = ObservabilitySettings.load(environ={})

    assert settings.namespace == "ccproxy"
    assert settings.duration_buckets == DEFAULT_DURATION_BUCKETS
    assert settings.pushgateway_url is None
    assert settings.pushgateway_enabled is False
    assert settings.pushgateway_protocol == "pushgateway"
    assert settings.pushgateway_instance  # the host name
    assert settings.log_format == "auto"


def test_environment_variables_override_defaults() -> None:
    settings = ObservabilitySettings.load(
        environ={
            "CCOBS_NAMESPACE": "gateway",
            "CCOBS_DURATION_BUCKETS": "0.5, 5, 50",
            "CCOBS_MODEL_LABEL_CAP": "7",
            "CCOBS_MODEL_ALLOWLIST": "claude-sonnet-4-5,gpt-4o",
            "CCOBS_PUSHGATEWAY_URL": "http://127.0.0.1:9091/",
            "CCOBS_PUSHGATEWAY_INTERVAL_SECONDS": "2.5",
            "CCOBS_LOG_LEVEL": "debug",
            "CCOBS_METRICS_TOKEN": "s3cret",
        }
    )

    assert settings.namespace == "gateway"
    assert settings.duration_buckets == (0.5, 5.0, 50.0)
    assert settings.model_label_cap == 7
    assert settings.model_allowlist == ("claude-sonnet-4-5", "gpt-4o")
    assert settings.pushgateway_url == "http://127.0.0.1:9091"
    assert settings.pushgateway_interval_seconds == 2.5
    assert settings.log_level == "DEBUG"
    assert settings.metrics_token == "s3cret"


def test_yaml_file_sets_values_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "ccobs.yaml"
    config.write_text("namespace: fromfile\nttft_buckets: [0.1, 1, 10]\nlog_format: json\n")

    settings = ObservabilitySettings.load(
        environ={"CCOBS_CONFIG": str(config), "CCOBS_LOG_FORMAT": "console"}
    )

    assert settings.namespace == "fromfile"
    assert settings.ttft_buckets == (0.1, 1.0, 10.0)
    assert settings.log_format == "console"


def test_explicit_config_file_wins_over_ccobs_config(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("namespace: chosen\n")

    settings = ObservabilitySettings.load(
        config_file=chosen, environ={"CCOBS_CONFIG": str(tmp_path / "missing.yaml")}
    )

    assert settings.namespace == "chosen"


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("CCOBS_MODEL_LABEL_CAP", "abc", "model_label_cap"),
        ("CCOBS_MODEL_LABEL_CAP", "0", "model_label_cap"),
        ("CCOBS_DURATION_BUCKETS", "1,0.5", "duration_buckets"),
        ("CCOBS_DURATION_BUCKETS", "1,nan", "duration_buckets"),
        ("CCOBS_TTFT_BUCKETS", "", "ttft_buckets"),
        ("CCOBS_NAMESPACE", "9lives", "namespace"),
        ("CCOBS_NAMESPACE", "cc-proxy", "namespace"),
        ("CCOBS_PUSHGATEWAY_URL", "ftp://host", "pushgateway_url"),
        ("CCOBS_PUSHGATEWAY_PROTOCOL", "graphite", "pushgateway_protocol"),
        ("CCOBS_PUSHGATEWAY_INTERVAL_SECONDS", "-1", "pushgateway_interval_seconds"),
        ("CCOBS_PUSHGATEWAY_TIMEOUT_SECONDS", "inf", "pushgateway_timeout_seconds"),
        ("CCOBS_PUSHGATEWAY_INSTANCE", "a/b", "pushgateway_instance"),
        ("CCOBS_PUSHGATEWAY_JOB", " ", "pushgateway_job"),
        ("CCOBS_PUSHGATEWAY_JOB", "a\nb", "pushgateway_job"),
        ("CCOBS_PUSHGATEWAY_JOB", "j" * 257, "pushgateway_job"),
        ("CCOBS_LOG_FORMAT", "xml", "log_format"),
        ("CCOBS_LOG_LEVEL", "loud", "log_level"),
    ],
)
def test_invalid_value_fails_naming_field_and_value(variable: str, raw: str, field: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        ObservabilitySettings.load(environ={variable: raw})

    assert f"{field}={raw!r}" in str(excinfo.value)


@pytest.mark.parametrize("job", ["llm-gateway", "test-job", "team.a/proxy", "ccproxy"])
def test_pushgateway_job_takes_any_label_value_the_pushgateway_takes(job: str) -> None:
    assert ObservabilitySettings(pushgateway_job=job).pushgateway_job == job
    assert ObservabilitySettings.load(environ={"CCOBS_PUSHGATEWAY_JOB": job}).pushgateway_job == job


def test_unknown_yaml_field_is_an_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "ccobs.yaml"
    config.write_text("namespace: ok\npushgateway_ulr: http://typo\n")

    with pytest.raises(SettingsError, match="pushgateway_ulr"):
        ObservabilitySettings.load(config_file=config, environ={})


def test_yaml_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "ccobs.yaml"
    config.write_text("- just\n- a list\n")

    with pytest.raises(SettingsError, match="mapping"):
        ObservabilitySettings.load(config_file=config, environ={})


def test_broken_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("namespace: [unclosed\n")

    with pytest.raises(SettingsError, match=r"broken\.yaml"):
        ObservabilitySettings.load(config_file=config, environ={})


def test_missing_settings_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nowhere\.yaml"):
        ObservabilitySettings.load(config_file=tmp_path / "nowhere.yaml", environ={})


def test_remote_write_url_requires_the_victoriametrics_protocol() -> None:
    with pytest.raises(SettingsError, match="pushgateway_protocol=victoriametrics"):
        ObservabilitySettings(pushgateway_url="http://127.0.0.1:8428/api/v1/write")


def test_remote_write_url_is_accepted_for_victoriametrics() -> None:
    settings = ObservabilitySettings(
        pushgateway_url="http://127.0.0.1:8428/api/v1/write", pushgateway_protocol="victoriametrics"
    )

    assert settings.pushgateway_enabled


def test_as_dict_masks_the_metrics_token() -> None:
    assert ObservabilitySettings(metrics_token="s3cret").as_dict()["metrics_token"] == "[REDACTED]"


def test_settings_are_immutable() -> None:
    settings = ObservabilitySettings()

    with pytest.raises(AttributeError):
        settings.namespace = "other"  # type: ignore[misc]
