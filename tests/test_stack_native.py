"""``ccobs stack up | down | status`` with the real Debian binaries on loopback.

Every stack here runs on free ports in a temp dir, with PATH narrowed to the
five required binaries (so a Grafana installed on the machine changes
nothing), and is stopped by the test that started it, even on failure. One
stack is shared by the read-only checks to keep the module at a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from asgi_server import serve_asgi
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from realservers import LOOPBACK, http_get_json, require_binary, wait_for

from ccobs.access_log import open_access_log
from ccobs.fastapi import instrument
from ccobs.metrics import PrometheusMetrics
from ccobs.mixin.build import build, write
from ccobs.mixin.config import MixinConfig
from ccobs.stack.native import (
    BINARY_OF,
    INSTALL_HINT,
    RULE_FILES,
    STATE_FILE,
    Stack,
    StackAlreadyRunning,
    StackConfig,
    StackError,
    StackPorts,
    StackState,
)
from ccobs.stack.processes import pid_alive
from ccobs.stack.prometheus_config import StackAddresses, prometheus_config
from ccobs.storage import AccessLogRecord

pytestmark = pytest.mark.integration

REQUIRED = ("pushgateway", "victoriametrics", "alertmanager", "prometheus", "vmalert")
WEBHOOK_URL = "http://127.0.0.1:9/ccobs-test-webhook"
"""Never called here (no alert fires); it only has to reach Alertmanager's config."""


def _bin_dir(directory: Path, binaries: Any) -> Path:
    """A PATH entry holding exactly ``binaries`` (symlinks to the installed ones)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in binaries:
        (directory / name).symlink_to(require_binary(name))
    return directory


def _config(state_dir: Path, **overrides: Any) -> StackConfig:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "ports": StackPorts.free(),
        "scrape_interval": "1s",
        "evaluation_interval": "1s",
        "webhook_url": WEBHOOK_URL,
        "alertmanager_timings": {"group_wait": "1s", "group_interval": "2s"},
        "start_timeout": 30.0,
    }
    values.update(overrides)
    return StackConfig(**values)


def _kill_leftovers(state_dir: Path) -> None:
    """Last resort when ``down`` itself failed: no test leaves a server behind."""
    try:
        state = StackState.from_json((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return
    for service in state.services:
        if pid_alive(service.pid, service.start_ticks):
            os.kill(service.pid, signal.SIGKILL)


@pytest.fixture
def only_stack_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = _bin_dir(tmp_path / "bin", BINARY_OF.values())
    monkeypatch.setenv("PATH", str(path))
    return path


def _metrics_app() -> FastAPI:
    """Something for the stack's Prometheus to scrape as the proxy target."""
    app = FastAPI()
    instrument(app, PrometheusMetrics(registry=CollectorRegistry()))
    return app


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the read-only checks, built from the default mixin."""
    base = tmp_path_factory.mktemp("stack")
    with (
        pytest.MonkeyPatch.context() as patch,
        serve_asgi(_metrics_app()) as proxy,
    ):
        patch.setenv("PATH", str(_bin_dir(base / "bin", BINARY_OF.values())))
        stack = Stack(_config(base / "state", proxy_target=f"127.0.0.1:{proxy.port}"))
        try:
            stack.up()
            yield stack
        finally:
            try:
                stack.down()
            finally:
                _kill_leftovers(stack.state_dir)


def _state(stack: Stack) -> StackState:
    state = stack.read_state()
    assert state is not None
    return state


def _rule_groups(files: dict[str, str]) -> set[str]:
    return {group["name"] for name in RULE_FILES for group in yaml.safe_load(files[name])["groups"]}


def _subset(expected: Any, actual: Any) -> bool:
    """``expected`` is contained in ``actual`` (Prometheus adds defaults when it echoes)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# --- the running stack --------------------------------------------------------


def test_every_service_is_alive_healthy_and_recorded(running: Stack) -> None:
    statuses = running.status()
    assert [s.name for s in statuses] == list(REQUIRED)
    assert all(s.alive and s.healthy for s in statuses), statuses
    state = _state(running)
    assert all(s.url.startswith(f"http://{LOOPBACK}:") for s in state.services)
    assert any("grafana" in note and "not started" in note for note in state.notes)


def test_status_says_prometheus_scrapes_the_proxy_target_once_it_does(running: Stack) -> None:
    deadline = time.monotonic() + 15
    while (note := running.proxy_target_note()) is not None and "(up)" not in note:
        assert time.monotonic() < deadline, note
        time.sleep(0.5)

    assert note == f"proxy target {_state(running).proxy_target}: Prometheus scrapes it (up)"


def test_services_are_detached_from_the_command_that_started_them(running: Stack) -> None:
    # A session of their own: the terminal's Ctrl-C and the end of
    # `ccobs stack up` don't reach them.
    for service in _state(running).services:
        assert os.getsid(service.pid) == service.pid != os.getsid(0)
        assert Path(service.log).is_file()
        assert Path(service.log).is_relative_to(running.state_dir)


def test_prometheus_runs_the_config_rendered_from_the_one_template(running: Stack) -> None:
    state = _state(running)
    address = {s.name: f"{LOOPBACK}:{s.port}" for s in state.services}
    rule_files = [str(running.state_dir / "mixin" / name) for name in RULE_FILES]
    expected = prometheus_config(
        StackAddresses(
            proxy=state.proxy_target,
            pushgateway=address["pushgateway"],
            alertmanager=address["alertmanager"],
            victoriametrics=address["victoriametrics"],
        ),
        rule_files,
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    assert (running.state_dir / "prometheus" / "prometheus.yml").read_text() == expected
    served = http_get_json(f"{state.urls()['prometheus']}/api/v1/status/config")
    assert _subset(yaml.safe_load(expected), yaml.safe_load(served["data"]["yaml"]))


def test_prometheus_loaded_every_rule_group_of_the_mixin(running: Stack) -> None:
    expected = _rule_groups(build(MixinConfig()))
    rules = http_get_json(f"{_state(running).urls()['prometheus']}/api/v1/rules")
    loaded = {group["name"] for group in rules["data"]["groups"]}
    assert expected
    assert loaded == expected


def test_vmalert_loaded_the_same_rule_groups(running: Stack) -> None:
    expected = _rule_groups(build(MixinConfig()))
    rules = http_get_json(f"{_state(running).urls()['vmalert']}/api/v1/rules")
    assert {group["name"] for group in rules["data"]["groups"]} == expected


def test_alertmanager_runs_the_stack_config_with_the_webhook_overridden(running: Stack) -> None:
    status = http_get_json(f"{_state(running).urls()['alertmanager']}/api/v2/status")
    assert status["cluster"]["status"] == "disabled"
    served = yaml.safe_load(status["config"]["original"])
    hooks = [h["url"] for r in served["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks
    assert set(hooks) == {WEBHOOK_URL}
    routes = [served["route"], *served["route"].get("routes", [])]
    assert {r.get("group_wait", "1s") for r in routes} == {"1s"}
    assert {r.get("group_interval", "2s") for r in routes} == {"2s"}


def test_prometheus_scrapes_the_pushgateway_notifies_alertmanager_and_writes_to_vm(
    running: Stack,
) -> None:
    urls = _state(running).urls()

    def pushgateway_up() -> bool:
        targets = http_get_json(f"{urls['prometheus']}/api/v1/targets")["data"]["activeTargets"]
        return any(t["labels"]["job"] == "pushgateway" and t["health"] == "up" for t in targets)

    wait_for(pushgateway_up, timeout=15)
    alertmanagers = http_get_json(f"{urls['prometheus']}/api/v1/alertmanagers")
    assert [a["url"] for a in alertmanagers["data"]["activeAlertmanagers"]] == [
        f"{urls['alertmanager']}/api/v2/alerts"
    ]

    def remote_written() -> bool:
        with urllib.request.urlopen(f"{urls['victoriametrics']}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith('vm_rows_inserted_total{type="promremotewrite"}'):
                    return float(line.split()[-1]) > 0
        return False

    wait_for(remote_written, timeout=20)


def test_up_again_refuses_to_start_duplicates(running: Stack) -> None:
    before = _state(running)
    with pytest.raises(StackAlreadyRunning, match="already running"):
        Stack(running.config).up()
    assert _state(running) == before
    assert all(s.alive for s in running.status())


# --- starting and stopping ------------------------------------------------------


def test_down_stops_every_process_and_removes_the_state(
    tmp_path: Path, only_stack_binaries: Path
) -> None:
    stack = Stack(_config(tmp_path / "state"))
    try:
        state = stack.up()
        stopped = stack.down()
    finally:
        _kill_leftovers(stack.state_dir)
    assert [s.name for s in stopped] == list(REQUIRED)
    assert not any(pid_alive(s.pid, s.start_ticks) for s in state.services)
    assert all(_refused(s.url) for s in state.services)
    assert not (stack.state_dir / STATE_FILE).exists()
    assert stack.status() == []
    assert stack.down() == []  # nothing left to stop is not an error
    assert (stack.state_dir / "victoriametrics" / "data").is_dir()  # data stays


def test_missing_binary_is_a_clear_error_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binaries = [b for b in BINARY_OF.values() if b != "vmalert"]
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path / "bin", binaries)))
    stack = Stack(_config(tmp_path / "state"))
    with pytest.raises(StackError) as error:
        stack.up()
    message = str(error.value)
    assert "'vmalert'" in message
    assert "apt-get install victoria-metrics" in message
    assert INSTALL_HINT in message
    assert not (stack.state_dir / STATE_FILE).exists()


def test_taken_fixed_port_is_reported_before_anything_starts(
    tmp_path: Path, only_stack_binaries: Path
) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = Stack(
            _config(
                tmp_path / "state",
                ports=StackPorts(
                    **{**{name: 0 for name in (*REQUIRED, "grafana")}, "prometheus": port}
                ),
            )
        )
        with pytest.raises(StackError, match=rf"{port} \(prometheus\).*--free-ports"):
            stack.up()
    assert not (stack.state_dir / "pushgateway").exists()  # nothing was started


def test_a_service_that_fails_stops_the_ones_already_started(
    tmp_path: Path, only_stack_binaries: Path
) -> None:
    bad = tmp_path / "alertmanager.yml"
    bad.write_text("route:\n  receiver: nowhere\nreceivers: []\n")  # undefined receiver
    lines: list[str] = []
    stack = Stack(
        _config(tmp_path / "state", alertmanager_config=bad, webhook_url=None), echo=lines.append
    )
    try:
        with pytest.raises(StackError, match="alertmanager did not start") as error:
            stack.up()
    finally:
        _kill_leftovers(stack.state_dir)
    assert "nowhere" in str(error.value)  # Alertmanager's own complaint, from its log
    started = [line.split()[2] for line in lines if " ready " in line]
    assert len(started) == 2  # Pushgateway and VictoriaMetrics came up first...
    assert all(_refused(url) for url in started)  # ...and were stopped again
    assert not (stack.state_dir / STATE_FILE).exists()


def test_grafana_is_started_when_present_with_provisioned_datasources(
    tmp_path: Path, only_stack_binaries: Path
) -> None:
    # No Grafana is packaged for this machine: a stand-in that records how it
    # was started and answers /api/health proves the wiring, not Grafana.
    home = tmp_path / "grafana-home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "defaults.ini").write_text("")
    fake = home / "bin" / "grafana-server"
    fake.parent.mkdir()
    record = tmp_path / "grafana-invocation.json"
    fake.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import http.server, json, os, sys
            args = sys.argv[1:]
            port = int(next(a for a in args if a.startswith("cfg:server.http_port="))
                       .split("=", 1)[1])
            with open({str(record)!r}, "w") as out:
                json.dump({{"args": args,
                           "password": os.environ.get("GF_SECURITY_ADMIN_PASSWORD")}}, out)

            class Health(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200 if self.path == "/api/health" else 404)
                    self.end_headers()

            http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
            """
        )
    )
    fake.chmod(0o755)
    (only_stack_binaries / "grafana-server").symlink_to(fake)
    stack = Stack(_config(tmp_path / "state"))
    try:
        stack.up()
        assert [s.name for s in stack.status() if s.healthy] == [*REQUIRED, "grafana"]
        invocation = json.loads(record.read_text())
        first_password = invocation["password"]
        stack.down()
        state = stack.up()  # a restart reuses the password Grafana's database holds
        second_password = json.loads(record.read_text())["password"]
    finally:
        try:
            stack.down()
        finally:
            _kill_leftovers(stack.state_dir)

    grafana = stack.state_dir / "grafana"
    args = invocation["args"]
    assert f"--homepath={home}" in args
    assert f"cfg:paths.provisioning={grafana / 'provisioning'}" in args
    assert f"cfg:server.http_addr={LOOPBACK}" in args
    password_file = grafana / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert first_password == password_file.read_text().strip() == second_password
    assert all(first_password not in arg for arg in args)  # not visible in `ps`

    provisioning = grafana / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "ccobs.yaml").read_text())
    assert {d["uid"]: d["url"] for d in datasources["datasources"]} == {
        "prometheus": state.urls()["prometheus"],
        "victoriametrics": state.urls()["victoriametrics"],
    }
    providers = yaml.safe_load((provisioning / "dashboards" / "ccobs.yaml").read_text())
    dashboards = Path(providers["providers"][0]["options"]["path"])
    assert dashboards == stack.state_dir / "mixin" / "dashboards"
    assert sorted(dashboards.glob("*.json"))


# --- the command line -------------------------------------------------------------


def _ccobs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccobs.cli", "stack", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_up_status_down_round_trip(tmp_path: Path, only_stack_binaries: Path) -> None:
    env = {**os.environ, "PATH": str(only_stack_binaries)}
    state_dir = tmp_path / "state"
    where = ("--state-dir", str(state_dir))
    mixin = tmp_path / "mixin"  # as `ccobs mixin build --out` leaves it
    write(MixinConfig(), mixin)
    try:
        up = _ccobs(
            "up",
            *where,
            "--free-ports",
            "--proxy-target",
            "127.0.0.1:9",
            "--mixin-dir",
            str(mixin),
            env=env,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        state = StackState.from_json((state_dir / STATE_FILE).read_text())
        for service in state.services:  # the URLs are printed
            assert service.url in up.stdout
        # `up` has exited; the services it started run on.
        assert all(pid_alive(s.pid, s.start_ticks) for s in state.services)

        status = _ccobs("status", *where, env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "note: proxy target 127.0.0.1:9: nothing listens there yet" in status.stdout
        for service in state.services:
            assert re.search(rf"^{service.name} +{service.pid} +yes +yes ", status.stdout, re.M)

        again = _ccobs("up", *where, "--free-ports", env=env)
        assert again.returncode == 1
        assert "already running" in again.stderr

        down = _ccobs("down", *where, env=env)
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        _kill_leftovers(state_dir)
    assert not any(pid_alive(s.pid, s.start_ticks) for s in state.services)
    stopped = _ccobs("status", *where, env=env)
    assert stopped.returncode == 1
    assert "not running" in stopped.stdout


def test_cli_missing_binary_exits_1_with_the_install_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = _ccobs(
        "up", "--state-dir", str(tmp_path / "state"), env={**os.environ, "PATH": str(empty)}
    )
    assert result.returncode == 1
    assert "not found on PATH" in result.stderr
    assert (
        "apt-get install "
        + " ".join(
            sorted(
                [
                    "prometheus",
                    "prometheus-pushgateway",
                    "victoria-metrics",
                    "prometheus-alertmanager",
                ]
            )
        )
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_up_with_postgres_serves_an_access_log_and_down_stops_it(
    only_stack_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not under pytest's 0700 tmp dir: as root the server runs as `postgres`, which must
    # reach its directory.
    state_dir = Path(tempfile.mkdtemp(prefix="ccobs-stack-pg-"))
    state_dir.chmod(0o755)
    lines: list[str] = []
    stack = Stack(_config(state_dir, postgres_port=0), echo=lines.append)
    try:
        state = stack.up()
        postgres = next(s for s in stack.status() if s.name == "postgres")
        pgpass = state_dir / "postgres" / "pgpass"
        password = pgpass.read_text().strip().rsplit(":", 1)[1]
        pgpass_mode = stat.S_IMODE(pgpass.stat().st_mode)
        monkeypatch.setenv("PGPASSFILE", str(pgpass))
        with open_access_log(postgres.url) as store:
            store.store(
                AccessLogRecord(request_id="r1", timestamp=datetime.now(UTC), duration_ms=1.0)
            )
            assert store.flush()
            written = store.stats()["written"]
        stopped = stack.down()
    finally:
        _kill_leftovers(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    assert postgres.alive
    assert postgres.healthy, postgres.problem
    assert postgres.url.startswith("postgresql://ccobs@127.0.0.1:")
    assert written == 1
    assert pgpass_mode == 0o600
    assert "postgres" in [s.name for s in stopped]
    assert not any(pid_alive(s.pid, s.start_ticks) for s in state.services)
    assert password not in (state.to_json() + "\n".join(lines))
