"""The ``ccobs`` command line: settings, the mock upstream, the proxy, the load generator, the demo.

Imports of the demo modules happen inside the commands, so ``ccobs settings``
stays fast and works even where the demo's dependencies misbehave.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import inspect
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import yaml

from ccobs import __version__
from ccobs.settings import ObservabilitySettings, SettingsError

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

GRACEFUL_SHUTDOWN_SECONDS = 25.0
"""Default drain time of ``ccobs proxy`` on SIGTERM, under the 30 s Kubernetes and most
orchestrators give before SIGKILL, so the final push and access-log flush still happen."""


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
    run_upstream(args.host, args.port, config)
    return 0


PROXY_APP = "ccobs.cli:proxy_worker_app"


def proxy_worker_app() -> ASGIApp:
    """The app each ``ccobs proxy`` server process runs (uvicorn's factory).

    ``--workers`` processes are spawned, not forked: they inherit the
    environment this command prepared but not its logging set-up, so each one
    configures logging from the same settings before building the app.
    """
    from ccobs.logging import configure_logging
    from ccobs.proxy.relay import create_app_from_env

    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        _forget_dead_workers(multiprocess_dir)
    settings = ObservabilitySettings.load()
    configure_logging(settings.log_level, settings.log_format)
    # configure_logging hands uvicorn's loggers to ours, which would turn uvicorn's
    # access log back on; the proxy writes its own access-log line per request.
    logging.getLogger("uvicorn.access").propagate = False
    return create_app_from_env()


def _forget_dead_workers(path: str) -> None:
    """Drop the live-gauge files of workers that are gone without saying so.

    A worker that is SIGKILLed or OOM-killed cannot mark itself dead, and
    uvicorn replaces it: without this its requests in flight would stay in
    ``active_requests`` until the whole service restarts. Its counters stay,
    since their counts were served. Runs in each worker as it starts, so the
    replacement cleans up after the worker it replaces.
    """
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(glob.escape(path), "gauge_live*_*.db")):
        pid = Path(name).stem.rpartition("_")[2]
        if pid.isdigit() and not _process_exists(int(pid)):
            multiprocess.mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process
        return True
    return True


def _prepare_multiprocess_dir(path: str) -> None:
    """Create ``path`` or empty it of a previous run's prometheus_client files.

    Files left by a run that could not shut down (SIGKILL, OOM, power loss)
    would add that run's counts to this one's and keep its in-flight requests
    in ``active_requests`` forever; totals start from zero with each run, as
    they do for a single process.
    """
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(glob.escape(path), "*.db")):
        os.remove(name)


def _exit_zero_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn drains, then re-raises the SIGTERM it caught; ending here makes a
    # graceful stop exit 0, as the multi-worker parent already does.
    raise SystemExit(0)


def _serve_workers(config: uvicorn.Config) -> None:
    """uvicorn's multi-process supervisor, closing its listening socket first on shutdown.

    The parent holds a copy of the socket the workers accept on. uvicorn keeps it
    open until every worker has drained, so meanwhile the kernel still completes
    new connections nobody will accept: they hang, then are reset. Closed
    before the workers are told to stop, new connections are refused at once.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def terminate_all(self) -> None:
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

    sock = config.bind_socket()
    extra: dict[str, Any] = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn
        extra["target"] = uvicorn.Server(config).run
    try:
        Supervisor(config, sockets=[sock], **extra).run()
    finally:
        sock.close()


def _proxy_command(args: argparse.Namespace) -> int:
    import uvicorn

    from ccobs.logging import configure_logging
    from ccobs.proxy.relay import PRICES_ENV, UPSTREAM_ENV, ProxyConfig

    settings = ObservabilitySettings.load(config_file=args.config)
    ProxyConfig(upstream_url=args.upstream)  # fail here, with the message, not in a worker
    os.environ[UPSTREAM_ENV] = args.upstream
    if args.prices:
        os.environ[PRICES_ENV] = str(Path(args.prices).resolve())
    if args.config:
        os.environ["CCOBS_CONFIG"] = str(Path(args.config).resolve())
    if args.access_log_db:
        os.environ["CCOBS_ACCESS_LOG_DB"] = str(Path(args.access_log_db).resolve())
    configure_logging(settings.log_level, settings.log_format)
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        _prepare_multiprocess_dir(multiprocess_dir)
    elif args.workers > 1:
        # Workers share counts through files, in a fresh directory per run.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ccobs-metrics-")
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": args.graceful_timeout,
    }
    if args.workers > 1:
        _serve_workers(uvicorn.Config(PROXY_APP, **options))
        return 0
    signal.signal(signal.SIGTERM, _exit_zero_on_sigterm)
    uvicorn.run(PROXY_APP, **options)
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
    if args.access_log_db:
        settings = dataclasses.replace(settings, access_log_db=args.access_log_db)
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
            for note in state.notes:
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
        for note in recorded.notes if recorded else ():
            echo(f"note: {note}")
        return 0 if all(status.healthy for status in statuses) else 1
    except StackAlreadyRunning as exc:
        print(f"ccobs stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1
    except (StackError, MissingBinaryError) as exc:
        print(f"ccobs stack {args.stack_command}: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccobs",
        description="Observability for LLM API proxies: metrics, logs, push, and a demo.",
    )
    parser.add_argument("--version", action="version", version=f"ccobs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--config", metavar="FILE", help="YAML settings file (default: $CCOBS_CONFIG)"
        )

    settings = commands.add_parser(
        "settings",
        help="print the effective settings",
        description="Validate and print, as YAML, the settings ccobs would use: defaults, then "
        "the YAML file, then CCOBS_* variables. Exits 2 naming the field of an invalid value.",
    )
    config_option(settings)
    settings.set_defaults(handler=_settings_command)

    upstream = commands.add_parser(
        "upstream",
        help="run the mock LLM upstream (Anthropic and OpenAI APIs)",
        description="Serve a mock of the Anthropic Messages and OpenAI Chat Completions APIs, "
        "streaming included, with seedable latency and injected errors.",
    )
    upstream.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    upstream.add_argument("--port", type=_port, default=8001, help="port (default 8001)")
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
    upstream.add_argument("--seed", type=int, help="seed for repeatable behaviour")
    upstream.set_defaults(handler=_upstream_command)

    proxy = commands.add_parser(
        "proxy",
        help="run the instrumented LLM proxy",
        description="Relay /v1/messages and /v1/chat/completions to an upstream, with metrics "
        "on /metrics and one JSON access-log line per request. Point a client at it, e.g. "
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8000 claude",
    )
    proxy.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    proxy.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
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
    proxy.add_argument(
        "--access-log-db",
        metavar="PATH",
        help="store one record per request in this SQLite (or *.duckdb) file "
        "(default: $CCOBS_ACCESS_LOG_DB; unset: none)",
    )
    config_option(proxy)
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
        help="OpenAI model mix (used for --openai-share of requests)",
    )
    loadgen.add_argument("--openai-share", type=_share, default=0.0, help="share sent to OpenAI")
    loadgen.add_argument("--stream-share", type=_share, default=0.5, help="share streamed")
    loadgen.add_argument("--seed", type=int, help="seed for a repeatable request mix")
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
    demo.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="proxy port (default 8000)")
    demo.add_argument("--pushgateway-url", metavar="URL", help="also push metrics there")
    demo.add_argument("--seed", type=int, help="seed for repeatable traffic")
    demo.add_argument(
        "--log-file", default="ccobs-demo.log", help="JSON log lines (default ccobs-demo.log)"
    )
    demo.add_argument(
        "--access-log-db", metavar="PATH", help="store one record per request in this database"
    )
    config_option(demo)
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

    def state_dir_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--state-dir",
            default=".ccobs-stack",
            metavar="DIR",
            help="data, logs and the state file (default ./.ccobs-stack)",
        )

    stack_up = stack_commands.add_parser(
        "up",
        help="start the stack and wait until every service is healthy",
        description="Start the stack, wait until every service answers healthy, print the "
        "URLs. Refuses to start a second stack in the same --state-dir.",
    )
    state_dir_option(stack_up)
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
    state_dir_option(stack_down)
    stack_status = stack_commands.add_parser(
        "status",
        help="pid, liveness and health of each service",
        description="Show each service's pid, whether it runs and answers healthy; exits 1 "
        "when the stack is not running or a service is unhealthy.",
    )
    state_dir_option(stack_status)
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
