"""The ``ccobs`` command line: settings, the proxy, access logs, the mixin, the stack.

Only arguments are parsed here; each command's work lives in the module named
for it (serving the proxy in :mod:`ccobs.proxy.serve`), imported inside the
command, so ``ccobs settings`` stays fast. The demo's commands (``upstream``,
``loadgen``, ``demo``) come from :mod:`ccobs.demo.commands` through the
``ccobs.commands`` entry point: the product's CLI does not import the demo.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from ccobs import __version__
from ccobs.cli_options import (
    access_log_db_option,
    config_option,
    identities_option,
    listen_options,
    positive_float,
    positive_int,
    require_free_port,
)
from ccobs.proxy.serve import (
    GRACEFUL_SHUTDOWN_SECONDS,
    proxy_worker_app,  # re-exported: ``ccobs.cli:proxy_worker_app`` was the factory string
    serve,
)
from ccobs.settings import ObservabilitySettings, SettingsError

__all__ = ["COMMANDS_ENTRY_POINT", "build_parser", "main", "proxy_worker_app"]

COMMANDS_ENTRY_POINT = "ccobs.commands"
"""Entry-point group of functions that add sub-commands (``register(commands)``): the
demo's commands come this way, so this module does not import the demo."""


def _settings_command(args: argparse.Namespace) -> int:
    settings = ObservabilitySettings.load(config_file=args.config)
    sys.stdout.write(yaml.safe_dump(settings.as_dict(), sort_keys=False))
    return 0


def _proxy_command(args: argparse.Namespace) -> int:
    require_free_port(args.host, args.port)
    if args.metrics_port is not None:
        if args.metrics_port == args.port:
            raise ValueError("--metrics-port must differ from --port")
        require_free_port(args.host, args.metrics_port)
    serve(
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
        prices=args.prices,
        config_file=args.config,
        access_log_db=args.access_log_db,
        identities=args.identities,
        metrics_port=args.metrics_port,
    )
    return 0


def _identities_fingerprint_command(args: argparse.Namespace) -> int:
    from ccobs.identity import fingerprint, read_key

    print(fingerprint(read_key(sys.stdin, os.environ, args.env)))
    return 0


def _logs_command(args: argparse.Namespace) -> int:
    import json

    from ccobs.access_log import LogFilter, open_reader, parse_time, shown_location

    try:
        reader = open_reader(args.db)
    except OSError as exc:
        shown = shown_location(args.db)  # a URL's password is never echoed
        print(f"ccobs logs: cannot open {shown!r}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    since = (
        args.since
        if args.since is not None
        else ("24h" if args.logs_command == "analytics" else None)
    )
    flt = LogFilter(
        start=parse_time(since) if since else None,
        end=parse_time(args.until) if args.until else None,
        model=args.model,
        status=args.status,
        service_type=args.service_type,
        limit=getattr(args, "limit", 100),
        team=args.team,
        key_alias=args.key_alias,
        client_app=args.client_app,
        session_id=args.session,
    )
    if args.logs_command == "query":
        for record in reader.query(flt):
            print(json.dumps(record))
    else:
        print(json.dumps(reader.analytics(flt, group_by=args.by, top=args.top), indent=2))
    return 0


def _add_group_options(command: argparse.ArgumentParser) -> None:
    """``--by`` and ``--top`` of ``ccobs logs analytics``: who spent, most first."""
    from ccobs.access_log.breakdown import DEFAULT_TOP, GROUPS

    command.add_argument(
        "--by",
        choices=tuple(GROUPS),
        help="totals and one entry per group instead of per model and hour, ordered by cost",
    )
    command.add_argument(
        "--top",
        type=positive_int,
        default=DEFAULT_TOP,
        help=f"with --by: the most expensive groups at most (default {DEFAULT_TOP})",
    )


def _mixin_build_command(args: argparse.Namespace) -> int:
    from ccobs.mixin.build import write
    from ccobs.mixin.config import MixinConfig

    config = MixinConfig.from_yaml(args.config) if args.config else MixinConfig()
    for path in write(config, Path(args.out)):
        print(path)
    return 0


def _stack_command(args: argparse.Namespace) -> int:
    from ccobs.mixin.config import MixinConfig
    from ccobs.stack.native import Stack, StackAlreadyRunning, StackConfig, StackError, StackPorts
    from ccobs.stack.processes import MissingBinaryError

    def echo(line: str) -> None:
        print(line, flush=True)

    state_dir = Path(args.state_dir)
    try:
        if args.stack_command == "up":
            config = StackConfig(
                state_dir=state_dir,
                proxy_target=args.proxy_target,
                ports=StackPorts.free() if args.free_ports else StackPorts(),
                scrape_interval=args.scrape_interval,
                evaluation_interval=args.evaluation_interval,
                mixin=MixinConfig.from_yaml(args.mixin_config)
                if args.mixin_config
                else MixinConfig(),
                mixin_dir=Path(args.mixin_dir) if args.mixin_dir else None,
                postgres_port=(0 if args.free_ports else 5432) if args.postgres else None,
            )
            stack = Stack(config, echo=echo)
            state = stack.up()
            for note in [*state.notes, stack.proxy_target_note()]:
                echo(f"note: {note}")
            echo(f"The stack is up (state in {stack.state_dir}); scraping {config.proxy_target}:")
            for name, url in state.urls().items():
                echo(f"  {name:<16} {url}")
            if "postgres" in state.urls():
                pgpass = stack.state_dir / "postgres" / "pgpass"
                echo(
                    f"Access log on it: PGPASSFILE={pgpass} ccobs proxy --access-log-db "
                    f"{state.urls()['postgres']}"
                )
            echo("`ccobs stack status` checks it, `ccobs stack down` stops it.")
            return 0
        stack = Stack(StackConfig(state_dir=state_dir), echo=echo)
        if args.stack_command == "down":
            if not stack.down():
                echo(f"nothing running in {stack.state_dir}")
            return 0
        statuses = stack.status()
        if not statuses:
            echo(f"not running (no state in {stack.state_dir})")
            return 1
        echo(f"{'service':<16} {'pid':>8}  {'alive':<5}  {'healthy':<7}  url")
        for status in statuses:
            echo(
                f"{status.name:<16} {status.pid:>8}  {'yes' if status.alive else 'no':<5}  "
                f"{'yes' if status.healthy else 'no':<7}  {status.url}"
                + (f"  ({status.problem})" if status.problem else "")
            )
        recorded = stack.read_state()
        for note in [*(recorded.notes if recorded else ()), stack.proxy_target_note()]:
            echo(f"note: {note}")
        return 0 if all(status.healthy for status in statuses) else 1
    except StackAlreadyRunning as exc:
        print(f"ccobs stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1
    except (StackError, MissingBinaryError) as exc:
        print(f"ccobs stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1


def _state_dir_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--state-dir",
        default=".ccobs-stack",
        metavar="DIR",
        help="data, logs and the state file (default ./.ccobs-stack)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccobs",
        description="Observability for LLM API proxies: metrics, logs, push, and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"ccobs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    settings = commands.add_parser(
        "settings",
        help="print the effective settings",
        description="Validate and print, as YAML, the settings ccobs would use: defaults, then "
        "the YAML file, then CCOBS_* variables. Exits 2 naming the field of an invalid value.",
    )
    config_option(settings)
    settings.set_defaults(handler=_settings_command)

    proxy = commands.add_parser(
        "proxy",
        help="run the instrumented LLM proxy",
        description="Relay every path of an LLM API to an upstream, accounting tokens and cost "
        "of /v1/messages, /v1/chat/completions and /v1/responses, with metrics on /metrics "
        "and one JSON access-log line per request. Point a client at it, e.g. "
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8000 claude",
    )
    listen_options(proxy, 8000)
    proxy.add_argument(
        "--upstream",
        default="https://api.anthropic.com",
        metavar="URL",
        help="upstream base URL (default https://api.anthropic.com)",
    )
    proxy.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="worker processes; more than 1 uses prometheus_client multiprocess mode",
    )
    proxy.add_argument(
        "--graceful-timeout",
        type=positive_float,
        default=GRACEFUL_SHUTDOWN_SECONDS,
        metavar="S",
        help="on SIGTERM, stop accepting and give requests in flight up to S seconds to "
        "finish before cancelling them; the final push and the access-log flush follow "
        f"(default {GRACEFUL_SHUTDOWN_SECONDS:g})",
    )
    proxy.add_argument("--prices", metavar="FILE", help="YAML price overrides")
    access_log_db_option(
        proxy,
        "store one record per request in this SQLite (or *.duckdb) file "
        "(default: $CCOBS_ACCESS_LOG_DB; unset: none)",
    )
    identities_option(proxy)
    config_option(proxy)
    proxy.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="also serve /metrics on this port, from a thread of its own in each worker, so "
        "a scrape is answered even while the event loop is saturated (default: none)",
    )
    proxy.set_defaults(handler=_proxy_command)

    identities = commands.add_parser(
        "identities",
        help="fill in an identity file",
        description="Helpers for the identity file `ccobs proxy --identities` reads.",
    )
    identities_commands = identities.add_subparsers(dest="identities_command", required=True)
    fingerprint = identities_commands.add_parser(
        "fingerprint",
        help="print a key's fingerprint",
        description="Print the fingerprint (16 hex characters of its SHA-256) of the key read "
        "from stdin, or from the environment variable --env names: never from an argument, "
        "which other users see in `ps` and shells keep in history. Only the fingerprint is "
        "printed; put it in the identity file's `keys:` with an alias and a team.",
    )
    fingerprint.add_argument(
        "--env", metavar="NAME", help="read the key from this environment variable"
    )
    fingerprint.set_defaults(handler=_identities_fingerprint_command)

    # The demo's commands (upstream, loadgen, demo), and any other package's.
    for entry in entry_points(group=COMMANDS_ENTRY_POINT):
        entry.load()(commands)

    logs = commands.add_parser(
        "logs",
        help="query an access-log database offline",
        description="Read the access-log database `ccobs proxy --access-log-db` writes: "
        "records (JSON lines, newest first) or analytics (JSON: totals, per model, per hour, "
        "or per team, key alias, client app or session with --by).",
    )
    logs_commands = logs.add_subparsers(dest="logs_command", metavar="COMMAND", required=True)
    logs_query = logs_commands.add_parser(
        "query", help="matching records, newest first, one JSON object a line"
    )
    logs_analytics = logs_commands.add_parser(
        "analytics",
        help="requests, tokens, cost, error ratio and p50/p95 latency: totals, per model, per hour",
    )
    for command in (logs_query, logs_analytics):
        command.add_argument("--db", required=True, metavar="PATH", help="database file")
        command.add_argument(
            "--since",
            metavar="TIME",
            help="ISO 8601, epoch seconds, a span back from now (e.g. 2h, 7d), or today or "
            "month (UTC) (default: all for query, 24h for analytics)",
        )
        command.add_argument("--until", metavar="TIME", help="end of the range (exclusive)")
        command.add_argument("--model", help="only this model")
        command.add_argument("--status", type=int, help="only this HTTP status")
        command.add_argument("--service-type", help="only this service type")
        command.add_argument("--team", help="only this team (from the identity file)")
        command.add_argument("--key-alias", help="only this key alias")
        command.add_argument("--client-app", help="only this client app, e.g. claude-code")
        command.add_argument("--session", metavar="ID", help="only this session id")
        command.set_defaults(handler=_logs_command)
    logs_query.add_argument(
        "--limit", type=positive_int, default=100, help="records at most (default 100)"
    )
    _add_group_options(logs_analytics)

    mixin = commands.add_parser(
        "mixin",
        help="build the Grafana dashboards and Prometheus rules",
        description="Dashboards, alert and recording rules, runbook and rule unit tests.",
    )
    mixin_commands = mixin.add_subparsers(dest="mixin_command", metavar="COMMAND", required=True)
    mixin_build = mixin_commands.add_parser(
        "build",
        help="write dashboards/ and alerts/ under --out",
        description="Write dashboards/*.json and alerts/ (rules, runbook, promtool tests) "
        "under DIR, built from the defaults or a YAML file overriding them (namespace, "
        "job_selector, thresholds, windows, for durations).",
    )
    mixin_build.add_argument("--config", metavar="FILE", help="YAML mixin configuration")
    mixin_build.add_argument("--out", required=True, metavar="DIR", help="output directory")
    mixin_build.set_defaults(handler=_mixin_build_command)

    stack = commands.add_parser(
        "stack",
        help="run the monitoring stack natively (no Docker)",
        description="Prometheus, Pushgateway, VictoriaMetrics, Alertmanager, vmalert (and "
        "Grafana when installed) from the binaries on PATH, on loopback, with the stack's rules "
        "and dashboards; data and logs under --state-dir. The services keep running after "
        "`up` returns; `down` stops them.",
    )
    stack_commands = stack.add_subparsers(dest="stack_command", metavar="COMMAND", required=True)

    stack_up = stack_commands.add_parser(
        "up",
        help="start the stack and wait until every service is healthy",
        description="Start the stack, wait until every service answers healthy, print the "
        "URLs. Refuses to start a second stack in the same --state-dir.",
    )
    _state_dir_option(stack_up)
    stack_up.add_argument(
        "--proxy-target",
        default="127.0.0.1:8000",
        metavar="HOST:PORT",
        help="the proxy whose /metrics Prometheus scrapes (default 127.0.0.1:8000)",
    )
    stack_up.add_argument(
        "--free-ports",
        action="store_true",
        help="let the OS pick every port instead of 9090, 9091, 8428, 9093, 8880, 3000",
    )
    stack_up.add_argument(
        "--postgres",
        action="store_true",
        help="also start Debian's PostgreSQL for a shared access log (port 5432, or free "
        "with --free-ports); its password goes to STATE_DIR/postgres/pgpass",
    )
    stack_up.add_argument("--scrape-interval", default="15s", help="(default 15s)")
    stack_up.add_argument("--evaluation-interval", default="15s", help="(default 15s)")
    rules = stack_up.add_mutually_exclusive_group()
    rules.add_argument(
        "--mixin-config", metavar="FILE", help="build the rules and dashboards from this YAML"
    )
    rules.add_argument(
        "--mixin-dir",
        metavar="DIR",
        help="use the alerts/ and dashboards/ already built in DIR (`ccobs mixin build --out`)",
    )
    stack_down = stack_commands.add_parser(
        "down",
        help="stop every process `up` started",
        description="Stop every process `up` started (SIGTERM, then SIGKILL) and check that "
        "none is left; data and logs stay.",
    )
    _state_dir_option(stack_down)
    stack_status = stack_commands.add_parser(
        "status",
        help="pid, liveness and health of each service",
        description="Show each service's pid, whether it runs and answers healthy; exits 1 "
        "when the stack is not running or a service is unhealthy.",
    )
    _state_dir_option(stack_status)
    for command in (stack_up, stack_down, stack_status):
        command.set_defaults(handler=_stack_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        code: int = args.handler(args)
    except (SettingsError, ValueError) as exc:
        print(f"ccobs {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_left()
    return code


def _reader_left() -> int:
    """The reader of our output left (``ccobs logs query | head``): stop quietly.

    Not an error of ours, so no traceback; stdout is pointed at the null device so the
    interpreter's final flush cannot raise again. The exit status is a shell's for a
    writer killed by SIGPIPE (128 + 13), as ``seq`` or ``cat`` would report it.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
