"""The monitoring stack as plain processes on loopback: ``ccobs stack up | down | status``.

Development machines and CI have no Docker engine, so the stack that
``docker-compose.yml`` describes also runs from the Debian binaries on PATH.
Nothing here is a second copy of the stack's configuration:

- ``prometheus.yml`` is rendered from the same template as compose's
  (:func:`ccobs.stack.prometheus_config.prometheus_config`), with
  ``127.0.0.1:PORT`` where compose has service names;
- the rule files and dashboards are built from a :class:`MixinConfig` into the
  state dir (``ccobs.mixin.build.write``). With the default configuration
  that is byte for byte what is committed in ``alerts/`` and ``dashboards/``
  (a test holds them equal), it works from an installed package as well as
  from a checkout, and a test can pass short windows and ``for`` durations;
  ``mixin_dir`` points at an already built tree instead;
- Alertmanager reads the repository's ``stack/alertmanager.yml`` when run from
  a checkout, with the webhook URL replaceable so a test can receive the
  notifications.

The servers are detached (a session of their own, output to log files under
the state dir) so they outlive ``ccobs stack up``; the state file records
their pids, and ``down`` stops exactly those.

One module although past 600 lines: ``up``, ``down`` and ``status`` share the
launch, health-wait and rollback machinery of one ``Stack``; what it starts
is configured in :mod:`ccobs.stack.config` and recorded in :mod:`ccobs.stack.state`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from ccobs.mixin.build import write
from ccobs.mixin.config import duration_seconds
from ccobs.stack.config import (
    _REPO_ALERTMANAGER_CONFIG,
    BINARY_OF,
    GRAFANA_DATASOURCE_UIDS,
    INSTALL_HINT,
    READY_PATH,
    RULE_FILES,
    SERVICES,
    STACK_PACKAGES,
    STATE_FILE,
    StackAlreadyRunning,
    StackConfig,
    StackError,
    StackPorts,
)
from ccobs.stack.native_postgres import probe_service, request_fast_shutdown, start_stack_postgres
from ccobs.stack.processes import (
    DEBIAN_PACKAGE_OF,
    LOOPBACK,
    MissingBinaryError,
    ServerProcess,
    ServerStartError,
    pid_alive,
    port_is_free,
    start_server,
    stop_pid,
)
from ccobs.stack.prometheus_config import StackAddresses, prometheus_config
from ccobs.stack.state import ServiceRecord, ServiceStatus, StackState

__all__ = [  # the configuration and state types are re-exported: the CLI and users import them here
    "BINARY_OF",
    "INSTALL_HINT",
    "RULE_FILES",
    "SERVICES",
    "STATE_FILE",
    "ServiceStatus",
    "Stack",
    "StackAlreadyRunning",
    "StackConfig",
    "StackError",
    "StackPorts",
    "StackState",
    "find_grafana",
]


def find_grafana() -> tuple[str, list[str]] | None:
    """Grafana's binary and the arguments that make it serve, or ``None``.

    Grafana 10+ ships ``grafana server``; ``grafana-server`` is the older
    name, kept as a deprecated shim in newer releases.
    """
    if path := shutil.which("grafana"):
        return path, ["server"]
    if path := shutil.which("grafana-server"):
        return path, []
    return None


def _grafana_home(binary: str) -> Path | None:
    """The directory with ``conf/defaults.ini`` and ``public/`` that Grafana needs.

    A release tarball keeps it above ``bin/``; the deb and rpm packages in
    ``/usr/share/grafana``.
    """
    root = Path(binary).resolve().parent.parent
    for candidate in (root, root / "share" / "grafana", Path("/usr/share/grafana")):
        if (candidate / "conf" / "defaults.ini").is_file():
            return candidate
    return None


def _missing_binaries_message(missing: Sequence[MissingBinaryError]) -> str:
    names = ", ".join(f"{error.binary!r} (Debian package {error.package!r})" for error in missing)
    packages = sorted({error.package for error in missing})
    whole = "" if set(packages) == set(STACK_PACKAGES) else f" (the whole stack: `{INSTALL_HINT}`)"
    return (
        f"binaries not found on PATH: {names}. "
        f"Install with `apt-get install {' '.join(packages)}`{whole}."
    )


class Stack:
    """The native stack in one state dir: ``up()``, ``status()``, ``down()``.

    Each call works from the state file, so ``up`` in one process and
    ``down`` in another (the CLI) behave like both in one (the tests).
    ``echo`` receives progress lines; the CLI passes ``print``.
    """

    def __init__(
        self, config: StackConfig | None = None, *, echo: Callable[[str], None] | None = None
    ) -> None:
        self.config = config or StackConfig()
        self.state_dir = self.config.state_dir.resolve()
        self.state_file = self.state_dir / STATE_FILE
        self._echo = echo or (lambda _line: None)

    def __enter__(self) -> Stack:
        """``with Stack(config) as stack:`` runs the stack for the block (tests)."""
        self.up()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # --- reading state ----------------------------------------------------------

    def read_state(self) -> StackState | None:
        """The state file's content, or ``None`` when no stack was started here."""
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return StackState.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            raise StackError(f"unreadable state file {self.state_file}: {exc}") from exc

    def status(self) -> list[ServiceStatus]:
        """Each recorded service's pid, whether it runs and whether it answers healthy."""
        state = self.read_state()
        if state is None:
            return []
        statuses = []
        for service in state.services:
            alive = pid_alive(service.pid, service.start_ticks)
            problem = probe_service(service) if alive else "not running"
            statuses.append(
                ServiceStatus(
                    name=service.name,
                    pid=service.pid,
                    url=service.url,
                    health_url=service.health_url,
                    alive=alive,
                    healthy=problem is None,
                    problem=problem,
                )
            )
        return statuses

    def proxy_target_note(self) -> str | None:
        """How the proxy target stands now: asked of Prometheus, else probed; None if not up.

        Worked out when asked, never saved at ``up``: a target nobody served at
        ``up`` is usually scraped a minute later (``ccobs demo`` started beside it).
        """
        state = self.read_state()
        if state is None:
            return None
        target = state.proxy_target
        prometheus = next((s for s in state.services if s.name == "prometheus"), None)
        scraped = _scrape_state(prometheus.url, target) if prometheus is not None else None
        if scraped is not None:
            health, error = scraped
            if health == "up":
                return f"proxy target {target}: Prometheus scrapes it (up)"
            if health == "down":
                return f"proxy target {target}: Prometheus's last scrape failed: {error}"
        if self._reachable(target):
            return f"proxy target {target}: listening; Prometheus has not scraped it yet"
        return (
            f"proxy target {target}: nothing listens there yet; "
            "Prometheus will scrape it once it does (e.g. `ccobs demo`)"
        )

    # --- up -------------------------------------------------------------------

    def up(self) -> StackState:
        """Start every service, wait until each is healthy, record them; all or nothing.

        Raises :class:`StackAlreadyRunning` when an earlier ``up`` here still
        runs, :class:`StackError` (missing binary, taken port, a service that
        fails) after stopping whatever this call had started.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._refuse_duplicate()
            binaries = self._required_binaries()
            grafana = find_grafana()
            self._check_ports(with_grafana=grafana is not None)
            rule_files, dashboards = self._mixin_files()
            alertmanager_yaml, alertmanager_source = self._alertmanager_config()
            notes: list[str] = [f"alertmanager configuration: {alertmanager_source}"]
            if grafana is None:
                notes.append(
                    "grafana: no `grafana` or `grafana-server` on PATH, not started; "
                    f"import {dashboards}/*.json into a Grafana of your own"
                )
            launcher = _Launcher(self, notes)
            try:
                self._start_all(
                    launcher, binaries, grafana, rule_files, dashboards, alertmanager_yaml
                )
                if self.config.postgres_port is not None:
                    launcher.add(start_stack_postgres(self.state_dir, self.config.postgres_port))
            except BaseException:
                launcher.stop_all()
                self.state_file.unlink(missing_ok=True)
                raise
            return launcher.state()

    def _refuse_duplicate(self) -> None:
        state = self.read_state()
        if state is None:
            return
        running = [s for s in state.services if pid_alive(s.pid, s.start_ticks)]
        if running:
            pids = ", ".join(f"{s.name} pid {s.pid}" for s in running)
            raise StackAlreadyRunning(
                f"the stack in {self.state_dir} is already running ({pids}); "
                "`ccobs stack status` shows it, `ccobs stack down` stops it"
            )
        self._echo(f"removing the state of a previous run in {self.state_dir} (nothing runs)")
        self.state_file.unlink()

    def _required_binaries(self) -> dict[str, str]:
        found: dict[str, str] = {}
        missing: list[MissingBinaryError] = []
        for service, binary in BINARY_OF.items():
            path = shutil.which(binary)
            if path is None:
                missing.append(MissingBinaryError(binary))
            else:
                found[service] = path
        if missing:
            raise StackError(_missing_binaries_message(missing))
        return found

    def _check_ports(self, *, with_grafana: bool) -> None:
        """Fail before starting anything when a fixed port is taken, naming them all."""
        ports = asdict(self.config.ports)
        taken = [
            (service, port)
            for service, port in ports.items()
            if port and (with_grafana or service != "grafana") and not port_is_free(port)
        ]
        if taken:
            listed = ", ".join(f"{port} ({service})" for service, port in taken)
            units = " ".join(
                DEBIAN_PACKAGE_OF[BINARY_OF[s]]
                for s, _ in taken
                if s in BINARY_OF and s != "vmalert"
            )
            hint = (
                f" Is the Debian package's service running (`systemctl stop {units}`)?"
                if units
                else ""
            )
            raise StackError(
                f"ports taken on {LOOPBACK}: {listed}.{hint} "
                "Or start on free ports: `ccobs stack up --free-ports`."
            )

    def _mixin_files(self) -> tuple[list[Path], Path]:
        """The rule files and dashboards dir: ``mixin_dir``'s, or freshly built ones."""
        if self.config.mixin_dir is not None:
            base = self.config.mixin_dir.resolve()
        else:
            base = self.state_dir / "mixin"
            shutil.rmtree(base, ignore_errors=True)  # no file of an older configuration stays
            write(self.config.mixin, base)
        rule_files = [base / name for name in RULE_FILES]
        missing = [str(path) for path in rule_files if not path.is_file()]
        if missing:
            raise StackError(
                f"rule files missing: {', '.join(missing)}; build them with "
                f"`ccobs mixin build --out {base}`"
            )
        return rule_files, base / "dashboards"

    def _alertmanager_config(self) -> tuple[str, str]:
        """Alertmanager's YAML and where it came from, with ``webhook_url`` applied."""
        path = self.config.alertmanager_config
        if path is None and _REPO_ALERTMANAGER_CONFIG.is_file():
            path = _REPO_ALERTMANAGER_CONFIG
        url = self.config.webhook_url
        if path is None:
            # Outside a checkout: alerts still reach Alertmanager (and its UI).
            receiver: dict[str, Any] = {"name": "webhook" if url else "drop"}
            if url:
                receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
            data: dict[str, Any] = {
                "route": {"receiver": receiver["name"]},
                "receivers": [receiver],
            }
            source = "built in (no stack/alertmanager.yml found)"
        else:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise StackError(f"cannot read Alertmanager configuration {path}: {exc}") from exc
            source = str(path)
            if url:
                hooks = [
                    hook
                    for receiver in data.get("receivers") or []
                    for hook in receiver.get("webhook_configs") or []
                ]
                if not hooks:
                    raise StackError(f"{path} has no webhook receiver to point at {url}")
                for hook in hooks:
                    hook["url"] = url
        if url:
            source += f", webhooks to {url}"
        if self.config.alertmanager_timings:
            _set_route_timings(data.setdefault("route", {}), self.config.alertmanager_timings)
            timings = ", ".join(f"{k} {v}" for k, v in self.config.alertmanager_timings.items())
            source += f", {timings}"
        return yaml.safe_dump(data, sort_keys=False), source

    @staticmethod
    def _reachable(target: str) -> bool:
        host, _, port = target.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=0.2).close()
        except OSError:
            return False
        return True

    def _start_all(
        self,
        launch: _Launcher,
        binaries: Mapping[str, str],
        grafana: tuple[str, list[str]] | None,
        rule_files: Sequence[Path],
        dashboards: Path,
        alertmanager_yaml: str,
    ) -> None:
        config = self.config
        retention = config.retention
        intervals = (config.scrape_interval, config.evaluation_interval)
        # Prometheus remote-writes raw samples, recording rules and ALERTS;
        # vmalert writes the same rules' results. Identical labels (below)
        # make them one series, and deduplication one sample per interval.
        dedup = f"{min(duration_seconds(text) for text in intervals)}s"

        pushgateway = launch(
            "pushgateway",
            binaries["pushgateway"],
            lambda workdir, port: [
                f"--web.listen-address={LOOPBACK}:{port}",
                # Pushed groups survive a restart, as they do in compose's volume.
                f"--persistence.file={workdir / 'pushgateway.db'}",
            ],
        )
        victoriametrics = launch(
            "victoriametrics",
            binaries["victoriametrics"],
            lambda workdir, port: [
                f"-httpListenAddr={LOOPBACK}:{port}",
                f"-storageDataPath={workdir / 'data'}",
                f"-retentionPeriod={retention}",
                f"-dedup.minScrapeInterval={dedup}",
            ],
        )

        def alertmanager_args(workdir: Path, port: int) -> list[str]:
            path = workdir / "alertmanager.yml"
            path.write_text(alertmanager_yaml, encoding="utf-8")
            return [
                f"--config.file={path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                # Gossip would bind 0.0.0.0:9094: neither loopback nor needed.
                "--cluster.listen-address=",
            ]

        alertmanager = launch("alertmanager", binaries["alertmanager"], alertmanager_args)

        rendered = prometheus_config(
            StackAddresses(
                proxy=config.proxy_target,
                pushgateway=_address(pushgateway),
                alertmanager=_address(alertmanager),
                victoriametrics=_address(victoriametrics),
            ),
            [str(path) for path in rule_files],
            scrape_interval=config.scrape_interval,
            evaluation_interval=config.evaluation_interval,
        )
        external_labels: dict[str, str] = (
            yaml.safe_load(rendered)["global"].get("external_labels") or {}
        )

        def prometheus_args(workdir: Path, port: int) -> list[str]:
            path = workdir / "prometheus.yml"
            path.write_text(rendered, encoding="utf-8")
            return [
                f"--config.file={path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--web.enable-lifecycle",  # POST /-/reload after rebuilding the rules
            ]

        launch("prometheus", binaries["prometheus"], prometheus_args)
        launch(
            "vmalert",
            binaries["vmalert"],
            lambda _workdir, port: [
                *(f"-rule={path}" for path in rule_files),
                f"-datasource.url={victoriametrics.url}",
                f"-notifier.url={alertmanager.url}",
                # Required with recording rules; remote read restores alert
                # state across restarts from the ALERTS series written here.
                f"-remoteWrite.url={victoriametrics.url}",
                f"-remoteRead.url={victoriametrics.url}",
                # Prometheus's external labels and no ``alertgroup``: the same
                # rule yields the same series and alert from either evaluator.
                *(f"-external.label={name}={value}" for name, value in external_labels.items()),
                "-disableAlertgroupLabel",
                f"-external.url=http://{LOOPBACK}:{port}",
                f"-evaluationInterval={config.evaluation_interval}",
                f"-httpListenAddr={LOOPBACK}:{port}",
            ],
        )
        if grafana is not None:
            self._start_grafana(launch, grafana, dashboards)

    def _start_grafana(
        self, launch: _Launcher, grafana: tuple[str, list[str]], dashboards: Path
    ) -> None:
        binary, subcommand = grafana
        workdir = self.state_dir / "grafana"
        provisioning = workdir / "provisioning"
        urls = launch.urls()
        datasources = [
            {
                "name": name,
                "uid": GRAFANA_DATASOURCE_UIDS[service],
                "type": "prometheus",  # VictoriaMetrics speaks the Prometheus API
                "access": "proxy",
                "url": urls[service],
                "isDefault": service == "prometheus",
                "editable": False,
                # As in compose's provisioning: $__rate_interval spans four scrapes.
                "jsonData": {"timeInterval": self.config.scrape_interval, "httpMethod": "POST"},
            }
            for service, name in (
                ("prometheus", "Prometheus"),
                ("victoriametrics", "VictoriaMetrics"),
            )
        ]
        providers = [
            {
                "name": "ccobs",
                "folder": "ccobs",
                "type": "file",
                "disableDeletion": True,
                "options": {"path": str(dashboards)},
            }
        ]
        for kind, key, items in (
            ("datasources", "datasources", datasources),
            ("dashboards", "providers", providers),
        ):
            (provisioning / kind).mkdir(parents=True, exist_ok=True)
            (provisioning / kind / "ccobs.yaml").write_text(
                yaml.safe_dump({"apiVersion": 1, key: items}, sort_keys=False), encoding="utf-8"
            )
        for kind in ("plugins", "alerting", "notifiers"):
            (provisioning / kind).mkdir(parents=True, exist_ok=True)
        password = self._grafana_password(workdir)
        home = sorted(dashboards.glob("*overview*.json"))
        settings = {
            "paths.data": workdir / "data",
            "paths.logs": workdir / "logs",
            "paths.plugins": workdir / "plugins",
            "paths.provisioning": provisioning,
            "server.http_addr": LOOPBACK,
            "security.admin_user": "admin",
            # Grafana's defaults, stated as compose states them: no way in without the password.
            "auth.anonymous.enabled": "false",
            "users.allow_sign_up": "false",
            "analytics.reporting_enabled": "false",
            "analytics.check_for_updates": "false",
            **({"dashboards.default_home_dashboard_path": home[0]} if home else {}),
        }
        homepath = _grafana_home(binary)

        def args(_workdir: Path, port: int) -> list[str]:
            # cfg:section.key=value on the command line overrides every file,
            # including a system grafana.ini pointing at /var/lib/grafana.
            return [
                *subcommand,
                *([f"--homepath={homepath}"] if homepath else []),
                *(f"cfg:{key}={value}" for key, value in settings.items()),
                f"cfg:server.http_port={port}",
            ]

        # The password goes by environment, not argv, where `ps` would show it.
        launch("grafana", binary, args, env={"GF_SECURITY_ADMIN_PASSWORD": password})
        launch.notes.append(f"grafana: user admin, password in {workdir / 'admin-password'}")

    @staticmethod
    def _grafana_password(workdir: Path) -> str:
        """The admin password: Grafana stores it in its database on first start,
        so a restart must reuse the one generated then (no admin/admin default)."""
        path = workdir / "admin-password"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        workdir.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(12)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(password + "\n")
        return password

    # --- down -----------------------------------------------------------------

    def down(self) -> list[ServiceRecord]:
        """Stop every recorded service (SIGTERM, wait, SIGKILL), newest first; the
        services stopped. Raises :class:`StackError`, keeping the state file, when
        one survives."""
        with self._locked():
            state = self.read_state()
            if state is None:
                return []
            for service in reversed(state.services):
                request_fast_shutdown(service)
                stop_pid(service.pid, service.start_ticks)
                self._echo(f"stopped {service.name} (pid {service.pid})")
            survivors = [s for s in state.services if pid_alive(s.pid, s.start_ticks)]
            if survivors:
                pids = ", ".join(f"{s.name} pid {s.pid}" for s in survivors)
                raise StackError(f"still running after SIGKILL: {pids}")
            self.state_file.unlink()
            return list(state.services)

    # --- helpers --------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise ``up`` and ``down`` on one state dir (two at once would race on pids)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / ".lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another `ccobs stack` command is working on {self.state_dir}"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_state(self, state: StackState) -> None:
        """Atomically, after every start, so ``down`` can stop a half-finished ``up``."""
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(state.to_json() + "\n", encoding="utf-8")
        partial.replace(self.state_file)


def _set_route_timings(
    route: dict[str, Any], timings: Mapping[str, str], root: bool = True
) -> None:
    """Set ``timings`` on the root route and wherever a child route overrides them."""
    for key, value in timings.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes") or []:
        _set_route_timings(child, timings, root=False)


def _scrape_state(prometheus_url: str, target: str) -> tuple[str, str] | None:
    """(health, last error) of the active target ``target`` in Prometheus, if it has one."""
    try:
        with urllib.request.urlopen(
            f"{prometheus_url}/api/v1/targets?state=active", timeout=2.0
        ) as response:
            targets = json.load(response)["data"]["activeTargets"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for item in targets:
        if item.get("labels", {}).get("instance") == target:
            return str(item.get("health")), str(item.get("lastError") or "")
    return None


def _address(server: ServerProcess) -> str:
    return f"{LOOPBACK}:{server.port}"


class _Launcher:
    """Starts services one by one for :meth:`Stack.up`, recording each in the state file."""

    def __init__(self, stack: Stack, notes: list[str]) -> None:
        self.stack = stack
        self.notes = notes
        self.records: list[ServiceRecord] = []

    def __call__(
        self,
        name: str,
        binary: str,
        make_args: Callable[[Path, int], Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        config = self.stack.config
        port: int = getattr(config.ports, name)
        extra = list(config.extra_args.get(name, ()))
        workdir = self.stack.state_dir / name
        started = time.monotonic()
        try:
            server = start_server(
                binary,
                lambda directory, chosen: [*make_args(directory, chosen), *extra],
                workdir=workdir,
                ready_path=READY_PATH[name],
                name=name,
                port=port,
                timeout=config.start_timeout,
                detach=True,
                env=env,
                log_path=workdir / f"{name}.log",
            )
        except ServerStartError as exc:
            raise StackError(f"{name} did not start: {exc}") from exc
        record = ServiceRecord(
            name=name,
            pid=server.pid or 0,
            start_ticks=server.start_ticks,
            port=server.port,
            url=server.url,
            health_url=server.ready_url,
            log=str(server.log_path),
            binary=binary,
        )
        self.records.append(record)
        self.stack._write_state(self.state())
        self.stack._echo(f"{name:<16} ready  {server.url:<24} ({time.monotonic() - started:.1f} s)")
        return server

    def add(self, record: ServiceRecord) -> None:
        """A service started by its own module (PostgreSQL), recorded like the others."""
        self.records.append(record)
        self.stack._write_state(self.state())
        self.stack._echo(f"{record.name:<16} ready  {record.url}")

    def urls(self) -> dict[str, str]:
        return {record.name: record.url for record in self.records}

    def state(self) -> StackState:
        return StackState(
            services=tuple(self.records),
            notes=tuple(self.notes),
            proxy_target=self.stack.config.proxy_target,
        )

    def stop_all(self) -> None:
        for record in reversed(self.records):
            request_fast_shutdown(record)
            stop_pid(record.pid, record.start_ticks)
