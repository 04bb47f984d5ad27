"""The mixin's configuration: the few knobs from which every dashboard and rule file is built.

A user with another metric namespace or job label, or other thresholds,
builds their own copies with ``ccobs mixin build --config FILE``; the
defaults build what is committed in ``dashboards/`` and ``alerts/``.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ccobs.catalog import CLIENT_ERROR_TYPES, DEFAULT_NAMESPACE, MetricSpec

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration of one unit (``30s``, ``5m``, ``1h``, ``3d``)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or 3d")
    number, unit = int(match.group(1)), match.group(2)
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass(frozen=True)
class BurnRateWindow:
    """One multi-window, multi-burn-rate pair: fire when both windows burn faster than ``factor``.

    ``factor`` multiplies the error budget (1 - SLO): a factor of 14.4 over
    1h spends 2 % of a 30-day budget in that hour.
    """

    long: str
    short: str
    factor: float
    severity: str
    for_: str


@dataclass(frozen=True)
class MixinConfig:
    """Everything the dashboards and rules depend on.

    ``job_selector`` is the label matcher that picks the proxy's series
    (without braces); ``error_ratio_excluded`` names the error types that do
    not count against the availability SLO (the client's own mistakes).
    """

    namespace: str = DEFAULT_NAMESPACE
    job_selector: str = 'job=~"ccproxy.*"'
    alert_prefix: str = "CCProxy"
    aggregation_labels: tuple[str, ...] = ("job",)
    """The labels every ``sum by`` keeps (``job`` first); add ``cluster``, ``namespace``...
    where one job name runs in several places, as kubernetes-mixin's ``clusterLabel``."""
    runbook_url: str = "https://github.com/ccobs/ccobs/blob/main/alerts/runbook.md"
    dashboard_uid_prefix: str = "ccobs"
    dashboard_tags: tuple[str, ...] = ("ccobs", "llm-proxy")
    vm_datasource_uid: str = "victoriametrics"
    """Grafana uid of the VictoriaMetrics data source the pipeline dashboard compares with."""
    error_ratio_slo: float = 0.99
    error_ratio_excluded: str = "|".join(CLIENT_ERROR_TYPES)
    slo_window: str = "30d"
    """The period the availability SLO's error budget is counted over (the burn factors' basis)."""
    burn_rate_windows: tuple[BurnRateWindow, ...] = (
        BurnRateWindow("1h", "5m", 14.4, "critical", "2m"),
        BurnRateWindow("6h", "30m", 6.0, "critical", "15m"),
        BurnRateWindow("1d", "2h", 3.0, "warning", "1h"),
        BurnRateWindow("3d", "6h", 1.0, "warning", "3h"),
    )
    burn_rate_min_requests: float = 100.0
    """Requests the long window of a burn-rate pair must have seen before it may page.

    The SRE workbook's guard for low-traffic services: with 6 requests an
    hour, one routine upstream 529 is a 17 % error ratio over 1h and would
    page critical. The default, 1 / (1 - 0.99), is the count under which a
    single failure alone spends more than the 99 % objective's whole budget.
    """
    slow_rules_min_window: str = "1d"
    """Recording rules over windows this long or longer go to a slower group."""
    slow_rules_interval: str = "1m"
    """Evaluation interval of that group: a 1d or 3d window moves little in a minute, and
    reading days of raw samples every 15 s is most of the rules' cost."""
    latency_p99_seconds: float = 60.0
    latency_window: str = "5m"
    latency_for: str = "15m"
    ttft_p99_seconds: float = 10.0
    """Time-to-first-token threshold: the latency users of a stream feel."""
    ttft_quantile: float = 0.99
    """The TTFT percentile the alert and the overview's panel compare with ``ttft_p99_seconds``."""
    ttft_min_requests: float = 20.0
    """Streams the latency window must hold before the TTFT percentile may alert.

    A percentile of a handful of streams is one slow request; below this
    count the TTFT alert stays quiet (the SRE workbook's low-traffic guard).
    """
    hourly_cost_budget_usd: float = 50.0
    cost_critical_factor: float = 5.0
    """The hourly spend, in multiples of ``hourly_cost_budget_usd``, that pages (critical)."""
    cost_window: str = "1h"
    cost_for: str = "15m"
    daily_cost_budget_usd: float = 500.0
    """Spend over the last 24 hours above which the daily alert warns (every job together)."""
    daily_cost_for: str = "30m"
    rate_limited_ratio: float = 0.05
    rate_limited_window: str = "10m"
    rate_limited_for: str = "10m"
    upstream_auth_error_ratio: float = 0.05
    """Share of requests the upstream refuses as unauthorized or not found above which to warn."""
    upstream_auth_min_errors: float = 5.0
    """Such errors the window must hold before the share may alert (one retired-model call is not
    an incident)."""
    upstream_auth_window: str = "10m"
    upstream_auth_for: str = "5m"
    data_quality_window: str = "1h"
    """Window of the alerts on unpriced requests, label overflows and access-log drops."""
    data_quality_for: str = "5m"
    proxy_down_for: str = "5m"
    push_stale_seconds: float = 300.0
    push_stale_for: str = "5m"
    push_failure_window: str = "15m"
    """The window of PushFailing's runbook query (the alert reads the Pushgateway's times)."""
    push_failure_for: str = "15m"
    budget_spend_window: str = "5m"
    """Window of the recorded spend rate per team and key that budget spend is summed from."""
    budget_spend_interval: str = "30s"
    """Evaluation interval of the spend-rate group: spend over a period is the sum of its
    recorded rates times this interval, so the rule file states it (Prometheus and vmalert
    honour a group's own interval)."""
    budget_exhausted_for: str = "2m"
    """Spend over a rolling period only falls as old spend leaves it: a short hold suffices."""
    budget_burn_window: str = "1h"
    """The burn rate a budget alert projects over its period: the spend rate averaged over this."""
    budget_burn_for: str = "15m"
    rate_limit_headroom_ratio: float = 0.1
    """Share of an upstream rate limit left (remaining / limit) under which to warn."""
    rate_limit_headroom_for: str = "5m"
    """How long the headroom must stay under that share: a window that refills within a
    minute is routine, one that stays nearly spent is the 429s to come."""
    subscription_utilization_ratio: float = 0.9
    """Share of a Claude subscription usage window (5h, 7d...) used above which to warn."""
    subscription_utilization_for: str = "5m"
    truncated_ratio: float = 0.1
    """Share of answers cut off by their output-token limit (stop reason ``max_tokens`` or
    ``length``) above which to warn."""
    truncated_min_answers: float = 20.0
    """Answers the window must hold before their truncated share may alert."""
    truncated_window: str = "30m"
    truncated_for: str = "15m"

    def __post_init__(self) -> None:
        if not _NAME.match(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a Prometheus name")
        if not re.match(r"^[A-Z][A-Za-z0-9]*$", self.alert_prefix):
            raise ValueError(f"alert_prefix {self.alert_prefix!r} must be CamelCase")
        if not self.aggregation_labels or self.aggregation_labels[0] != "job":
            raise ValueError("aggregation_labels must start with job")
        for label in self.aggregation_labels:
            if not _NAME.match(label) or label.startswith("__") or label in ("le", "instance"):
                raise ValueError(f"aggregation label {label!r} is not a usable label name")
        if not 0 < self.error_ratio_slo < 1:
            raise ValueError(f"error_ratio_slo must be within (0, 1), got {self.error_ratio_slo}")
        for name in (
            "latency_p99_seconds",
            "ttft_p99_seconds",
            "hourly_cost_budget_usd",
            "daily_cost_budget_usd",
            "push_stale_seconds",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("burn_rate_min_requests", "ttft_min_requests", "upstream_auth_min_errors"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cost_critical_factor <= 1:
            raise ValueError(
                f"cost_critical_factor must be above 1, got {self.cost_critical_factor}"
            )
        if not 0 < self.ttft_quantile < 1:
            raise ValueError(f"ttft_quantile must be within (0, 1), got {self.ttft_quantile}")
        if not 0 < self.upstream_auth_error_ratio < 1:
            raise ValueError(
                f"upstream_auth_error_ratio must be within (0, 1), got "
                f"{self.upstream_auth_error_ratio}"
            )
        if not 0 < self.rate_limited_ratio < 1:
            raise ValueError(
                f"rate_limited_ratio must be within (0, 1), got {self.rate_limited_ratio}"
            )
        for name in ("rate_limit_headroom_ratio", "subscription_utilization_ratio"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be within (0, 1), got {getattr(self, name)}")
        if not 0 < self.truncated_ratio < 1:
            raise ValueError(f"truncated_ratio must be within (0, 1), got {self.truncated_ratio}")
        if self.truncated_min_answers < 0:
            raise ValueError(
                f"truncated_min_answers must not be negative, got {self.truncated_min_answers}"
            )
        for f in fields(self):
            if f.name.endswith(("_window", "_for", "_interval")):
                try:
                    duration_seconds(getattr(self, f.name))
                except ValueError as exc:
                    raise ValueError(f"{f.name}: {exc}") from None
        for window in self.burn_rate_windows:
            for text in (window.long, window.short, window.for_):
                try:
                    duration_seconds(text)
                except ValueError as exc:
                    raise ValueError(f"burn_rate_windows: {exc}") from None
            if window.severity not in ("critical", "warning", "info"):
                raise ValueError(
                    f"burn-rate severity {window.severity!r} is not critical/warning/info"
                )
        interval = duration_seconds(self.budget_spend_interval)
        if duration_seconds(self.budget_spend_window) < 2 * interval:
            raise ValueError(
                "budget_spend_window must span at least two budget_spend_interval evaluations"
            )

    @property
    def error_budget(self) -> float:
        return 1.0 - self.error_ratio_slo

    def metric(self, spec: MetricSpec) -> str:
        """The exposed name of a catalogue metric under this namespace."""
        return spec.full_name(self.namespace)

    @classmethod
    def from_yaml(cls, path: str | Path) -> MixinConfig:
        """Defaults overridden by a YAML mapping.

        Every mistake (a missing or unreadable file, YAML that is not a mapping,
        an unknown field, a value of the wrong type or out of range) is a
        :class:`MixinConfigError` naming the file and the field, never a
        traceback from deeper down.
        """
        where = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise MixinConfigError(f"mixin config {where!r}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise MixinConfigError(f"mixin config {where!r} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise MixinConfigError(f"mixin config {where!r} must be a mapping of field: value")
        defaults = {f.name: f for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - set(defaults))
        if unknown:
            raise MixinConfigError(f"mixin config {where!r} has unknown fields {unknown}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            try:
                values[name] = _typed(name, value, _default_of(defaults[name]))
            except (TypeError, ValueError) as exc:
                raise MixinConfigError(f"mixin config {where!r}: {name}: {exc}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise MixinConfigError(f"mixin config {where!r}: {exc}") from None


class MixinConfigError(ValueError):
    """A mixin configuration file that cannot be used; the message names the file and field."""


def _default_of(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _typed(name: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of the field's default (YAML gives plain types)."""
    if name == "burn_rate_windows":
        if not isinstance(value, list):
            raise TypeError("expected a list of {long, short, factor, severity, for}")
        return tuple(_burn_rate_window(item) for item in value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError(f"expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _burn_rate_window(item: Any) -> BurnRateWindow:
    keys = {"long", "short", "factor", "severity", "for"}
    if not isinstance(item, dict) or set(item) != keys:
        raise TypeError(f"each window needs exactly the keys {sorted(keys)}, got {item!r}")
    factor = item["factor"]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
        raise TypeError(f"factor must be a positive number, got {factor!r}")
    texts = [item[key] for key in ("long", "short", "severity", "for")]
    if not all(isinstance(text, str) for text in texts):
        raise TypeError(f"long, short, severity and for must be strings, got {item!r}")
    return BurnRateWindow(item["long"], item["short"], float(factor), item["severity"], item["for"])
