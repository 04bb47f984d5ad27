"""Observability settings: one object, read from the environment and an optional YAML file.

Every field has a default that works out of the box. Values come, in rising
precedence, from the defaults, a YAML file (``CCOBS_CONFIG`` or an explicit
path) and ``CCOBS_*`` environment variables. A bad value fails at start-up with
a message naming the field and the value, never later on a request.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ccobs.catalog import DEFAULT_DURATION_BUCKETS, DEFAULT_NAMESPACE, DEFAULT_TTFT_BUCKETS
from ccobs.logging import FORMATS as LOG_FORMATS
from ccobs.logging import LEVELS as LOG_LEVELS

ENV_PREFIX = "CCOBS_"
CONFIG_ENV_VAR = "CCOBS_CONFIG"

PUSH_PROTOCOLS = ("pushgateway", "victoriametrics")

_METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_JOB_CHARS = 256
_VM_REMOTE_WRITE_SUFFIX = "/api/v1/write"


class SettingsError(ValueError):
    """A setting has a value ccobs cannot use; the message names the field and value."""


def _default_instance() -> str:
    return socket.gethostname() or "localhost"


@dataclass(frozen=True)
class ObservabilitySettings:
    """Configuration for metrics, push, logging and the ``/metrics`` endpoint.

    Frozen so that one validated object can be shared by every component
    without anyone changing it behind the others' backs.
    """

    namespace: str = DEFAULT_NAMESPACE
    duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    ttft_buckets: tuple[float, ...] = DEFAULT_TTFT_BUCKETS
    model_label_cap: int = 50
    model_allowlist: tuple[str, ...] = ()
    label_value_max_length: int = 128
    pushgateway_url: str | None = None
    pushgateway_job: str = "ccproxy"
    pushgateway_instance: str = field(default_factory=_default_instance)
    pushgateway_protocol: str = "pushgateway"
    pushgateway_interval_seconds: float = 15.0
    pushgateway_timeout_seconds: float = 5.0
    pushgateway_failure_threshold: int = 3
    pushgateway_reset_seconds: float = 30.0
    pushgateway_max_backoff_seconds: float = 60.0
    log_format: str = "auto"
    log_level: str = "INFO"
    metrics_token: str | None = None
    access_log_db: str | None = None
    access_log_retention_days: float = 30.0
    access_log_queue_size: int = 50_000
    access_log_client_info: bool = False
    access_log_api_token: str | None = None
    identities: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, _validate(f.name, value))
        _check_consistency(self)

    @property
    def pushgateway_enabled(self) -> bool:
        return self.pushgateway_url is not None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, with the ``/metrics`` and ``/logs`` tokens masked, for printing
        (and the password of a PostgreSQL access-log URL)."""
        from ccobs.access_log.location import shown_location

        data = asdict(self)
        for secret in ("metrics_token", "access_log_api_token"):
            if data[secret]:
                data[secret] = "[REDACTED]"
        if data["access_log_db"]:
            data["access_log_db"] = shown_location(data["access_log_db"])
        for key in ("duration_buckets", "ttft_buckets", "model_allowlist"):
            data[key] = list(data[key])
        return data

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ObservabilitySettings:
        """Defaults, overridden by the YAML file, overridden by ``CCOBS_*`` variables.

        ``config_file`` falls back to ``$CCOBS_CONFIG``; ``environ`` to ``os.environ``.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config_file if config_file is not None else env.get(CONFIG_ENV_VAR)
        if path:
            values.update(_read_yaml(Path(path)))
        known = {f.name for f in fields(cls)}
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        return cls(**values)


FIELD_DOCS: dict[str, str] = {
    "namespace": "Prefix of every metric name.",
    "duration_buckets": "Response duration histogram buckets, seconds (comma-separated).",
    "ttft_buckets": "Time-to-first-token histogram buckets, seconds (comma-separated).",
    "model_label_cap": "Distinct `model` values kept; later new ones are recorded as `other`.",
    "model_allowlist": "When set, only these models get their own `model` value (comma-separated).",
    "label_value_max_length": "Label values longer than this are truncated.",
    "pushgateway_url": "Push target; unset disables pushing.",
    "pushgateway_job": "`job` label of pushed metrics.",
    "pushgateway_instance": "`instance` label of pushes, so replicas never overwrite each other.",
    "pushgateway_protocol": "`pushgateway`, or `victoriametrics` (`/api/v1/import/prometheus`).",
    "pushgateway_interval_seconds": "Seconds between background pushes.",
    "pushgateway_timeout_seconds": "Timeout of one push request.",
    "pushgateway_failure_threshold": "Consecutive failed pushes that open the circuit breaker.",
    "pushgateway_reset_seconds": "Seconds the breaker stays open before one probe push.",
    "pushgateway_max_backoff_seconds": (
        "Longest wait between pushes while they fail: pushing resumes at most this long "
        "after the target is back."
    ),
    "log_format": "`auto` (JSON lines, console on a terminal), `json` or `console`.",
    "log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    "metrics_token": "When set, `/metrics` requires `Authorization: Bearer <token>`.",
    "access_log_db": "Access-log database: a file (SQLite; DuckDB for `*.duckdb`) or a "
    "`postgresql://` URL (shared by several proxies); unset disables.",
    "access_log_retention_days": "Days of access-log records kept; older ones are pruned.",
    "access_log_queue_size": "Records waiting to be written; past it new records are dropped.",
    "access_log_client_info": "Also store the client address and user agent (personal data).",
    "access_log_api_token": "When set, serves `/logs/query|analytics|stream` to this bearer token.",
    "identities": (
        "Identity file (YAML) naming key fingerprints by alias and team; when set, every "
        "request is attributed (team, key, client app, session). `ccobs proxy` always is."
    ),
}
"""One line per field: the settings table of docs/reference.md is built from it."""


def settings_table_markdown() -> str:
    """The settings table of docs/reference.md: field, environment variable, default, meaning."""
    defaults = ObservabilitySettings(pushgateway_instance="HOST")
    rows = [
        "| field | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in fields(ObservabilitySettings):
        default = getattr(defaults, f.name)
        if f.name == "pushgateway_instance":
            shown = "the host name"
        elif isinstance(default, tuple):
            shown = f"`{','.join(f'{v:g}' if isinstance(v, float) else v for v in default)}`"
            shown = shown if default else "(none)"
        elif default is None:
            shown = "(unset)"
        else:
            shown = f"`{default}`"
        env = ENV_PREFIX + f.name.upper()
        rows.append(f"| `{f.name}` | `{env}` | {shown} | {FIELD_DOCS[f.name]} |")
    return "\n".join(rows) + "\n"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {str(path)!r} must hold a mapping of field: value")
    known = {f.name for f in fields(ObservabilitySettings)}
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise SettingsError(
            f"settings file {str(path)!r} has unknown fields {unknown}; known: {sorted(known)}"
        )
    return data


def _fail(name: str, value: Any, expected: str) -> SettingsError:
    return SettingsError(f"invalid setting {name}={value!r}: expected {expected}")


def _as_number(name: str, value: Any, expected: str) -> float:
    if isinstance(value, bool):
        raise _fail(name, value, expected)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(name, value, expected) from None
    if not math.isfinite(number) or number <= 0:
        raise _fail(name, value, expected)
    return number


def _as_positive_int(name: str, value: Any) -> int:
    expected = "a positive integer"
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise _fail(name, value, expected)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _fail(name, value, expected) from None
    if number <= 0:
        raise _fail(name, value, expected)
    return number


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _as_buckets(name: str, value: Any) -> tuple[float, ...]:
    expected = "a comma-separated list of increasing positive finite numbers"
    try:
        buckets = tuple(_as_number(name, item, expected) for item in _as_list(value))
    except SettingsError:
        raise _fail(name, value, expected) from None
    if not buckets or any(low >= high for low, high in itertools.pairwise(buckets)):
        raise _fail(name, value, expected)
    return buckets


def _as_optional_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value.strip() or None


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise _fail(name, value, "true or false")


def _as_choice(name: str, value: Any, choices: tuple[str, ...], *, upper: bool = False) -> str:
    text = str(value).strip()
    text = text.upper() if upper else text.lower()
    if text not in choices:
        raise _fail(name, value, f"one of {', '.join(choices)}")
    return text


def _validate(name: str, value: Any) -> Any:
    """Coerce one field from its YAML or environment form, or fail naming it."""
    if name == "namespace":
        text = str(value).strip()
        if not _METRIC_NAME.match(text):
            raise _fail(name, value, "a Prometheus name: letters, digits and '_', not first digit")
        return text
    if name == "pushgateway_job":
        # A label value, not a name: ``llm-gateway`` is the norm. The Pushgateway takes any
        # non-empty value (one with a '/' travels base64-encoded in the URL).
        text = str(value).strip()
        if not text or len(text) > _MAX_JOB_CHARS or not text.isprintable():
            raise _fail(
                name,
                value,
                f"a non-empty printable label value of at most {_MAX_JOB_CHARS} characters",
            )
        return text
    if name == "pushgateway_instance":
        text = str(value).strip()
        if not text or "/" in text:
            raise _fail(name, value, "a non-empty value without '/'")
        return text
    if name in ("duration_buckets", "ttft_buckets"):
        return _as_buckets(name, value)
    if name in (
        "model_label_cap",
        "label_value_max_length",
        "pushgateway_failure_threshold",
        "access_log_queue_size",
    ):
        return _as_positive_int(name, value)
    if name == "model_allowlist":
        return tuple(str(item) for item in _as_list(value) if str(item))
    if name.endswith("_seconds"):
        return _as_number(name, value, "a positive number of seconds")
    if name == "pushgateway_url":
        url = _as_optional_str(name, value)
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise _fail(name, value, "an http:// or https:// URL")
        return url.rstrip("/") if url else None
    if name == "pushgateway_protocol":
        return _as_choice(name, value, PUSH_PROTOCOLS)
    if name == "log_format":
        return _as_choice(name, value, LOG_FORMATS)
    if name == "log_level":
        return _as_choice(name, value, LOG_LEVELS, upper=True)
    if name in ("metrics_token", "access_log_db", "access_log_api_token", "identities"):
        return _as_optional_str(name, value)
    if name == "access_log_retention_days":
        return _as_number(name, value, "a positive number of days")
    if name == "access_log_client_info":
        return _as_bool(name, value)
    raise AssertionError(f"no validator for setting {name}")  # pragma: no cover


def _check_consistency(settings: ObservabilitySettings) -> None:
    url = settings.pushgateway_url
    if (
        url is not None
        and url.endswith(_VM_REMOTE_WRITE_SUFFIX)
        and settings.pushgateway_protocol != "victoriametrics"
    ):
        raise SettingsError(
            f"invalid setting pushgateway_url={url!r}: {_VM_REMOTE_WRITE_SUFFIX} is a "
            "VictoriaMetrics endpoint; set pushgateway_protocol=victoriametrics "
            "(CCOBS_PUSHGATEWAY_PROTOCOL) to push there"
        )
