"""The demo's commands: ``ccobs upstream``, ``ccobs loadgen`` and ``ccobs demo``.

Registered with the ``ccobs`` command line through the ``ccobs.commands`` entry
point (``pyproject.toml``), so the product's CLI (:mod:`ccobs.cli`) does not
import the demo: a proxy deployment runs without it, and the demo can change
without touching the product.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ccobs.cli_options import (
    access_log_db_option,
    config_option,
    identities_option,
    listen_options,
    positive_float,
    positive_int,
    require_free_port,
    seed_option,
    share,
    weights,
)
from ccobs.demo.sdk_retries import MAX_RETRIES
from ccobs.settings import ObservabilitySettings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the demo's commands to the ``ccobs`` command line's sub-commands."""
    upstream = commands.add_parser(
        "upstream",
        help="run the mock LLM upstream (Anthropic and OpenAI APIs)",
        description="Serve a mock of the Anthropic Messages and OpenAI Chat Completions and "
        "Responses APIs, streaming included, with seedable latency and injected errors.",
    )
    listen_options(upstream, 8001)
    upstream.add_argument(
        "--error-rate",
        type=share,
        default=0.0,
        help="share of requests answered 429, 500 or 529 (default 0)",
    )
    upstream.add_argument(
        "--latency", type=positive_float, help="median non-streaming latency, s (default 2)"
    )
    upstream.add_argument(
        "--ttft", type=positive_float, help="median time to first token, s (default 0.4)"
    )
    seed_option(upstream, "repeatable behaviour")
    upstream.set_defaults(handler=_upstream_command)

    loadgen = commands.add_parser(
        "loadgen",
        help="send Anthropic/OpenAI-shaped load to a proxy",
        description="Send load at a fixed rate or concurrency for a duration or a request "
        "count, show progress, and print a summary (errors by status, latency "
        "percentiles, tokens, cost).",
    )
    loadgen.add_argument("--target", required=True, metavar="URL", help="proxy base URL")
    pace = loadgen.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=positive_float, help="requests per second")
    pace.add_argument("--concurrency", type=positive_int, help="requests in flight")
    amount = loadgen.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=positive_float, help="seconds to run")
    amount.add_argument("--requests", type=positive_int, help="requests to send")
    loadgen.add_argument(
        "--models",
        type=weights,
        default={"claude-sonnet-4-6": 1.0},
        help="Anthropic model mix, e.g. claude-sonnet-4-6=3,claude-haiku-4-5=1",
    )
    loadgen.add_argument(
        "--openai-models",
        type=weights,
        default={"gpt-4.1-mini": 1.0},
        help="OpenAI model mix (for --openai-share and --responses-share)",
    )
    loadgen.add_argument("--openai-share", type=share, default=0.0, help="share sent to OpenAI")
    loadgen.add_argument(
        "--responses-share",
        type=share,
        default=0.0,
        help="share sent to OpenAI's Responses API (/v1/responses)",
    )
    loadgen.add_argument("--stream-share", type=share, default=0.5, help="share streamed")
    seed_option(loadgen, "a repeatable request mix")
    loadgen.add_argument("--timeout", type=positive_float, default=60.0, help="per request, s")
    loadgen.add_argument("--api-key", help="sent as x-api-key (never printed)")
    loadgen.add_argument(
        "--max-retries",
        type=int,
        choices=range(MAX_RETRIES + 1),
        default=0,
        metavar="N",
        help="retry 408/409/429/5xx answers up to N times, as the SDKs do (default 0)",
    )
    loadgen.set_defaults(handler=_loadgen_command)

    demo = commands.add_parser(
        "demo",
        help="mock upstream + proxy + load generator with a live view; no API key needed",
        description="Run the mock upstream, the instrumented proxy and the load generator on "
        "loopback, and show a live view of request rate, latency, time to first token, "
        "tokens, cost and errors computed from the proxy's metrics. Ctrl-C stops.",
    )
    demo.add_argument("--duration", type=positive_float, help="seconds to run (default: forever)")
    demo.add_argument("--rate", type=positive_float, default=5.0, help="requests/s (default 5)")
    demo.add_argument(
        "--error-rate", type=share, default=0.02, help="injected upstream errors (default 0.02)"
    )
    listen_options(demo, 8000, "proxy port")
    demo.add_argument("--pushgateway-url", metavar="URL", help="also push metrics there")
    seed_option(demo, "repeatable traffic")
    demo.add_argument(
        "--log-file", default="ccobs-demo.log", help="JSON log lines (default ccobs-demo.log)"
    )
    access_log_db_option(
        demo,
        "store one record per request in this SQLite (or *.duckdb) file "
        "(default: $CCOBS_ACCESS_LOG_DB, else the log file's name with .db: ccobs-demo.db)",
    )
    identities_option(demo, "default: $CCOBS_IDENTITIES, else the demo's own")
    config_option(demo)
    demo.set_defaults(handler=_demo_command)


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
    require_free_port(args.host, args.port)
    run_upstream(args.host, args.port, config)
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
        max_retries=args.max_retries,
    )
    summary = run_loadgen_cli(config)
    return 0 if summary.requests > 0 else 1


def _demo_command(args: argparse.Namespace) -> int:
    from ccobs.demo.callers import DEMO_IDENTITIES
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
    # The demo's callers are named by its own identity file unless told another.
    identities = args.identities or settings.identities or str(DEMO_IDENTITIES)
    settings = dataclasses.replace(settings, access_log_db=access_log_db, identities=identities)
    require_free_port(args.host, args.port)
    run_demo(config, settings)
    return 0
