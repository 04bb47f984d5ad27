"""The ``ccobs`` command line: settings, the mock upstream, the proxy, the load generator, the demo.

Only arguments are parsed here; each command's work lives in the module named
for it (serving the proxy in :mod:`ccobs.proxy.serve`). Imports of the demo
modules happen inside the commands, so ``ccobs settings`` stays fast and works
even where the demo's dependencies misbehave.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from ccobs import __version__
from ccobs.proxy.serve import (
    GRACEFUL_SHUTDOWN_SECONDS,
    proxy_worker_app,  # re-exported: ``ccobs.cli:proxy_worker_app`` was the factory string
    serve,
)
from ccobs.settings import ObservabilitySettings, SettingsError

__all__ = ["build_parser", "main", "proxy_worker_app"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}")
    return value


def _weights(text: str) -> dict[str, float]:
    """``model=weight,model=weight`` (a bare model weighs 1)."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        weights[name.strip()] = _positive_float(weight) if weight else 1.0
    if not weights:
        raise argparse.ArgumentTypeError("expected at least one model")
    return weights


def _settings_command(args: argparse.Namespace) -> int:
    settings = ObservabilitySettings.load(config_file=args.config)
    sys.stdout.write(yaml.safe_dump(settings.as_dict(), sort_keys=False))
    return 0


def _require_free_port(host: str, port: int) -> None:
    """Fail before starting a server whose port is taken, with a way out, as ``stack up`` does.

    Checked by binding the way uvicorn will (``SO_REUSEADDR``), so a port held
    only by connections in TIME_WAIT is free here too.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Stop what listens "
                "there, or choose another port with --port P (--port 0 takes a free one)."
            ) from None


def _upstream_command(args: argparse.Namespace) -> int:
    from ccobs.demo.upstream import Delay, UpstreamConfig, run_upstream

    defaults = UpstreamConfig()
    config = UpstreamConfig(
        seed=args.seed,
        error_rate=args.error_rate,
        latency=defaults.latency
        if args.latency is None
        else Delay(args.latency, 0.5, args.latency * 30),
        ttft=defaults.ttft if args.ttft is None else Delay(args.ttft, 0.5, args.ttft * 30),
    )
    _require_free_port(args.host, args.port)
    run_upstream(args.host, args.port, config)
    return 0


def _proxy_command(args: argparse.Namespace) -> int:
    _require_free_port(args.host, args.port)
    serve(
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        workers=args.workers,
        graceful_timeout=args.graceful_timeout,
        prices=args.prices,
        config_file=args.config,
        access_log_db=args.access_log_db,
    )
    return 0


def _loadgen_command(args: argparse.Namespace) -> int:
    from ccobs.demo.loadgen import LoadConfig, run_loadgen_cli

    headers = {"x-api-key": args.api_key} if args.api_key else {}
    config = LoadConfig(
        target=args.target,
        rate=args.rate,
        concurrency=args.concurrency,
        duration=args.duration,
        requests=args.requests,
        models=args.models,
        openai_models=args.openai_models,
        openai_share=args.openai_share,
        responses_share=args.responses_share,
        stream_share=args.stream_share,
        seed=args.seed,
        timeout=args.timeout,
        headers=headers,
    )
    summary = run_loadgen_cli(config)
    return 0 if summary.requests > 0 else 1


def _demo_command(args: argparse.Namespace) -> int:
    from ccobs.demo.runner import DemoConfig, run_demo

    config = DemoConfig(
        host=args.host,
        port=args.port,
        duration=args.duration,
        rate=args.rate,
        error_rate=args.error_rate,
        seed=args.seed,
        pushgateway_url=args.pushgateway_url,
        log_file=Path(args.log_file),
    )
    settings = ObservabilitySettings.load(config_file=args.config)
    # The demo keeps an access log unless told where: its dashboards' access-log panels
    # (records written, dropped) then read a real zero rather than nothing.
    access_log_db = (
        args.access_log_db or settings.access_log_db or str(Path(args.log_file).with_suffix(".db"))
    )
    settings = dataclasses.replace(settings, access_log_db=access_log_db)
    _require_free_port(args.host, args.port)
    run_demo(config, settings)
    return 0


def _logs_command(args: argparse.Namespace) -> int:
    import json

    from ccobs.access_log import LogFilter, open_reader, parse_time

    try:
        reader = open_reader(args.db)
    except OSError as exc:
        print(f"ccobs logs: cannot open {args.db!r}: {exc.strerror or exc}", file=sys.stderr)
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
    )
    if args.logs_command == "query":
        for record in reader.query(flt):
            print(json.dumps(record))
    else:
        print(json.dumps(reader.analytics(flt), indent=2))
    return 0


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
            )
            stack = Stack(config, echo=echo)
            state = stack.up()
            for note in [*state.notes, stack.proxy_target_note()]:
                echo(f"note: {note}")
            echo(f"The stack is up (state in {stack.state_dir}); scraping {config.proxy_target}:")
            for name, url in state.urls().items():
                echo(f"  {name:<16} {url}")
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


def _config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config", metavar="FILE", help="YAML settings file (default: $CCOBS_CONFIG)"
    )


def _listen_options(command: argparse.ArgumentParser, port: int, port_help: str = "port") -> None:
    """``--host`` and ``--port`` of a command that serves."""
    command.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    command.add_argument("--port", type=_port, default=port, help=f"{port_help} (default {port})")


def _seed_option(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--seed", type=int, help=f"seed for {what}")


def _access_log_db_option(command: argparse.ArgumentParser, text: str) -> None:
    command.add_argument("--access-log-db", metavar="PATH", help=text)


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
    _config_option(settings)
    settings.set_defaults(handler=_settings_command)

    upstream = commands.add_parser(
        "upstream",
        help="run the mock LLM upstream (Anthropic and OpenAI APIs)",
        description="Serve a mock of the Anthropic Messages and OpenAI Chat Completions and "
        "Responses APIs, streaming included, with seedable latency and injected errors.",
    )
    _listen_options(upstream, 8001)
    upstream.add_argument(
        "--error-rate",
        type=_share,
        default=0.0,
        help="share of requests answered 429, 500 or 529 (default 0)",
    )
    upstream.add_argument(
        "--latency", type=_positive_float, help="median non-streaming latency, s (default 2)"
    )
    upstream.add_argument(
        "--ttft", type=_positive_float, help="median time to first token, s (default 0.4)"
    )
    _seed_option(upstream, "repeatable behaviour")
    upstream.set_defaults(handler=_upstream_command)

    proxy = commands.add_parser(
        "proxy",
        help="run the instrumented LLM proxy",
        description="Relay /v1/messages and /v1/chat/completions to an upstream, with metrics "
        "on /metrics and one JSON access-log line per request. Point a client at it, e.g. "
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8000 claude",
    )
    _listen_options(proxy, 8000)
    proxy.add_argument(
        "--upstream",
        default="https://api.anthropic.com",
        metavar="URL",
        help="upstream base URL (default https://api.anthropic.com)",
    )
    proxy.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes; more than 1 uses prometheus_client multiprocess mode",
    )
    proxy.add_argument(
        "--graceful-timeout",
        type=_positive_float,
        default=GRACEFUL_SHUTDOWN_SECONDS,
        metavar="S",
        help="on SIGTERM, stop accepting and give requests in flight up to S seconds to "
        "finish before cancelling them; the final push and the access-log flush follow "
        f"(default {GRACEFUL_SHUTDOWN_SECONDS:g})",
    )
    proxy.add_argument("--prices", metavar="FILE", help="YAML price overrides")
    _access_log_db_option(
        proxy,
        "store one record per request in this SQLite (or *.duckdb) file "
        "(default: $CCOBS_ACCESS_LOG_DB; unset: none)",
    )
    _config_option(proxy)
    proxy.set_defaults(handler=_proxy_command)

    loadgen = commands.add_parser(
        "loadgen",
        help="send Anthropic/OpenAI-shaped load to a proxy",
        description="Send load at a fixed rate or concurrency for a duration or a request "
        "count, show progress, and print a summary (errors by status, latency "
        "percentiles, tokens, cost).",
    )
    loadgen.add_argument("--target", required=True, metavar="URL", help="proxy base URL")
    pace = loadgen.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive_float, help="requests per second")
    pace.add_argument("--concurrency", type=_positive_int, help="requests in flight")
    amount = loadgen.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=_positive_float, help="seconds to run")
    amount.add_argument("--requests", type=_positive_int, help="requests to send")
    loadgen.add_argument(
        "--models",
        type=_weights,
        default={"claude-sonnet-4-6": 1.0},
        help="Anthropic model mix, e.g. claude-sonnet-4-6=3,claude-haiku-4-5=1",
    )
    loadgen.add_argument(
        "--openai-models",
        type=_weights,
        default={"gpt-4.1-mini": 1.0},
        help="OpenAI model mix (for --openai-share and --responses-share)",
    )
    loadgen.add_argument("--openai-share", type=_share, default=0.0, help="share sent to OpenAI")
    loadgen.add_argument(
        "--responses-share",
        type=_share,
        default=0.0,
        help="share sent to OpenAI's Responses API (/v1/responses)",
    )
    loadgen.add_argument("--stream-share", type=_share, default=0.5, help="share streamed")
    _seed_option(loadgen, "a repeatable request mix")
    loadgen.add_argument("--timeout", type=_positive_float, default=60.0, help="per request, s")
    loadgen.add_argument("--api-key", help="sent as x-api-key (never printed)")
    loadgen.set_defaults(handler=_loadgen_command)

    demo = commands.add_parser(
        "demo",
        help="mock upstream + proxy + load generator with a live view; no API key needed",
        description="Run the mock upstream, the instrumented proxy and the load generator on "
        "loopback, and show a live view of request rate, latency, time to first token, "
        "tokens, cost and errors computed from the proxy's metrics. Ctrl-C stops.",
    )
    demo.add_argument("--duration", type=_positive_float, help="seconds to run (default: forever)")
    demo.add_argument("--rate", type=_positive_float, default=5.0, help="requests/s (default 5)")
    demo.add_argument(
        "--error-rate", type=_share, default=0.02, help="injected upstream errors (default 0.02)"
    )
    _listen_options(demo, 8000, "proxy port")
    demo.add_argument("--pushgateway-url", metavar="URL", help="also push metrics there")
    _seed_option(demo, "repeatable traffic")
    demo.add_argument(
        "--log-file", default="ccobs-demo.log", help="JSON log lines (default ccobs-demo.log)"
    )
    _access_log_db_option(
        demo,
        "store one record per request in this SQLite (or *.duckdb) file "
        "(default: $CCOBS_ACCESS_LOG_DB, else the log file's name with .db: ccobs-demo.db)",
    )
    _config_option(demo)
    demo.set_defaults(handler=_demo_command)

    logs = commands.add_parser(
        "logs",
        help="query an access-log database offline",
        description="Read the access-log database `ccobs proxy --access-log-db` writes: "
        "records (JSON lines, newest first) or analytics (JSON: totals, per model, per hour).",
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
            help="ISO 8601, epoch seconds or a span back from now, e.g. 2h, 7d "
            "(default: all for query, 24h for analytics)",
        )
        command.add_argument("--until", metavar="TIME", help="end of the range (exclusive)")
        command.add_argument("--model", help="only this model")
        command.add_argument("--status", type=int, help="only this HTTP status")
        command.add_argument("--service-type", help="only this service type")
        command.set_defaults(handler=_logs_command)
    logs_query.add_argument(
        "--limit", type=_positive_int, default=100, help="records at most (default 100)"
    )

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
    return code


if __name__ == "__main__":
    sys.exit(main())
