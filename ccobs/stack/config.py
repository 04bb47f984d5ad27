"""What ``ccobs stack up`` starts and where: services, binaries, ports and options.

Kept apart from the runner (:mod:`ccobs.stack.native`) so the CLI and tests can
build and check a configuration without importing the process machinery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Final

from ccobs.mixin.config import MixinConfig, duration_seconds

DEFAULT_STATE_DIR: Final = Path(".ccobs-stack")
STATE_FILE: Final = "stack.json"
STATE_VERSION: Final = 1

RULE_FILES: Final = ("alerts/recording_rules.yaml", "alerts/alerts.yaml")
"""Rule files, relative to a built mixin, loaded by Prometheus and vmalert alike."""

STACK_PACKAGES: Final = (
    "prometheus",
    "prometheus-pushgateway",
    "victoria-metrics",
    "prometheus-alertmanager",
)
INSTALL_HINT: Final = f"apt-get install {' '.join(STACK_PACKAGES)}"

SERVICES: Final = (
    "pushgateway",
    "victoriametrics",
    "alertmanager",
    "prometheus",
    "vmalert",
    "grafana",
)
"""Start order: each service's dependencies come before it; ``down`` goes backwards,
so Prometheus stops (flushing remote write) while VictoriaMetrics still listens."""

BINARY_OF: Final[dict[str, str]] = {
    "pushgateway": "prometheus-pushgateway",
    "victoriametrics": "victoria-metrics",
    "alertmanager": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "vmalert": "vmalert",
}
"""The required binaries; Grafana is optional and found by :func:`find_grafana`."""

READY_PATH: Final[dict[str, str]] = {
    "pushgateway": "/-/ready",
    "victoriametrics": "/health",
    "alertmanager": "/-/ready",
    "prometheus": "/-/ready",
    "vmalert": "/health",
    "grafana": "/api/health",
}

GRAFANA_DATASOURCE_UIDS: Final[dict[str, str]] = {
    "prometheus": "prometheus",
    "victoriametrics": "victoriametrics",
}
"""Provisioned data source uids, the same as compose's
``stack/grafana/provisioning/datasources/ccobs.yaml`` (whose URLs are service
names, so it cannot be reused as is)."""

_REPO_ALERTMANAGER_CONFIG: Final = (
    Path(__file__).resolve().parents[2] / "stack" / "alertmanager.yml"
)
"""``stack/alertmanager.yml`` of the checkout this module runs from (absent in a wheel)."""


_ROUTE_TIMINGS: Final = ("group_wait", "group_interval", "repeat_interval")


class StackError(RuntimeError):
    """The stack cannot be started, stopped or read; the message says what to do."""


class StackAlreadyRunning(StackError):
    """``up`` found processes of an earlier ``up`` still running in the state dir."""


@dataclass(frozen=True)
class StackPorts:
    """Loopback port of each service; 0 picks a free one.

    The defaults are the services' usual ports, so bookmarks and docs/stack.md's
    URLs work; the Debian packages' own services listen there too, which is
    what :meth:`free` (``--free-ports``) is for.
    """

    pushgateway: int = 9091
    victoriametrics: int = 8428
    alertmanager: int = 9093
    prometheus: int = 9090
    vmalert: int = 8880
    grafana: int = 3000

    @classmethod
    def free(cls) -> StackPorts:
        """Every port chosen by the OS at start-up: parallel stacks and tests never collide."""
        return cls(**{f.name: 0 for f in fields(cls)})

    def __post_init__(self) -> None:
        values = asdict(self)
        for name, port in values.items():
            if not 0 <= port <= 65535:
                raise ValueError(f"port of {name} must be within 0..65535, got {port}")
        fixed = [port for port in values.values() if port]
        if len(fixed) != len(set(fixed)):
            raise ValueError(f"two services share a port: {values}")


@dataclass(frozen=True)
class StackConfig:
    """What ``up`` starts and how; the defaults are ``ccobs stack up`` without options.

    ``mixin`` builds the rules and dashboards (short windows in tests);
    ``mixin_dir`` uses an already built tree instead (``ccobs mixin build
    --out DIR`` or a checkout's root). ``alertmanager_config`` defaults to the
    checkout's ``stack/alertmanager.yml`` (else a configuration that receives
    and drops alerts); ``webhook_url`` replaces the URL of every webhook
    receiver in it, and ``alertmanager_timings`` (``group_wait``,
    ``group_interval``, ``repeat_interval``) the route tree's timings, so a
    test sees notifications, resolved ones included, within seconds rather
    than minutes. ``extra_args`` appends flags per service name, e.g.
    ``{"victoriametrics": ["-search.latencyOffset=0s"]}``.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    proxy_target: str = "127.0.0.1:8000"
    ports: StackPorts = field(default_factory=StackPorts)
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    retention: str = "15d"
    mixin: MixinConfig = field(default_factory=MixinConfig)
    mixin_dir: Path | None = None
    alertmanager_config: Path | None = None
    webhook_url: str | None = None
    alertmanager_timings: Mapping[str, str] = field(default_factory=dict)
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    start_timeout: float = 60.0
    postgres_port: int | None = None
    """Also start Debian's PostgreSQL (the shared access log's store) on this port; 0 picks
    a free one; None (the default) starts none."""

    def __post_init__(self) -> None:
        host, sep, port = self.proxy_target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"proxy target {self.proxy_target!r} is not HOST:PORT")
        for name in ("scrape_interval", "evaluation_interval", "retention"):
            duration_seconds(getattr(self, name))
        unknown = sorted(set(self.extra_args) - set(SERVICES))
        if unknown:
            raise ValueError(f"extra_args for unknown services {unknown}; known: {SERVICES}")
        unknown = sorted(set(self.alertmanager_timings) - set(_ROUTE_TIMINGS))
        if unknown:
            raise ValueError(f"alertmanager_timings {unknown} unknown; known: {_ROUTE_TIMINGS}")
        for text in self.alertmanager_timings.values():
            duration_seconds(text)
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"webhook URL {self.webhook_url!r} is not http(s)")
