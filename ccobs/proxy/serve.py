"""Serving the proxy: uvicorn, one process or ``--workers``, graceful shutdown on SIGTERM.

``ccobs proxy`` validates its arguments, then calls :func:`serve`. The
settings reach each worker through the environment, since ``--workers``
processes are spawned, not forked, and build their own app
(:func:`proxy_worker_app`, uvicorn's factory).
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ccobs.identity_file import load_identity_file
from ccobs.metrics_listener import LISTEN_ENV, listen_from_env
from ccobs.multiprocess import forget_dead_workers, prepare_multiprocess_dir
from ccobs.settings import ObservabilitySettings

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

GRACEFUL_SHUTDOWN_SECONDS = 25.0
"""Default drain time of ``ccobs proxy`` on SIGTERM, under the 30 s Kubernetes and most
orchestrators give before SIGKILL, so the final push and access-log flush still happen."""

IDENTITIES_ENV = "CCOBS_IDENTITIES"
"""The identity file's path, as the ``identities`` setting reads it."""

PROXY_APP = "ccobs.proxy.serve:proxy_worker_app"
"""uvicorn's factory string for the workers (``ccobs.cli:proxy_worker_app`` still works)."""


def proxy_worker_app() -> ASGIApp:
    """The app each ``ccobs proxy`` server process runs (uvicorn's factory).

    ``--workers`` processes are spawned, not forked: they inherit the
    environment :func:`serve` prepared but not its logging set-up, so each one
    configures logging from the same settings before building the app.
    """
    from ccobs.logging import configure_logging
    from ccobs.proxy.app import create_app_from_env

    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        forget_dead_workers(multiprocess_dir)
    settings = ObservabilitySettings.load()
    configure_logging(settings.log_level, settings.log_format)
    # configure_logging hands uvicorn's loggers to ours, which would turn uvicorn's
    # access log back on; the proxy writes its own access-log line per request.
    logging.getLogger("uvicorn.access").propagate = False
    app = create_app_from_env()
    # --metrics-port: /metrics also from a thread of its own, which a busy loop cannot starve.
    app.state.metrics_listener = listen_from_env(app.state.proxy.metrics, settings.metrics_token)
    return app


def serve(
    *,
    upstream: str,
    host: str,
    port: int,
    workers: int = 1,
    graceful_timeout: float = GRACEFUL_SHUTDOWN_SECONDS,
    prices: str | None = None,
    config_file: str | None = None,
    access_log_db: str | None = None,
    identities: str | None = None,
    metrics_port: int | None = None,
) -> None:
    """Serve the proxy until SIGTERM or Ctrl-C: drain for ``graceful_timeout`` s, then exit.

    ``metrics_port``: every server process also serves ``/metrics`` there, from a
    thread (:mod:`ccobs.metrics_listener`).

    Raises ``ValueError`` (an invalid upstream URL) or
    :class:`~ccobs.settings.SettingsError` here, before any worker starts.
    """
    import uvicorn

    from ccobs.access_log.location import is_postgres_url
    from ccobs.logging import configure_logging
    from ccobs.proxy.config import PRICES_ENV, UPSTREAM_ENV, ProxyConfig
    from ccobs.proxy.file_limit import raise_open_file_limit

    settings = ObservabilitySettings.load(config_file=config_file)
    ProxyConfig(upstream_url=upstream)  # fail here, with the message, not in a worker
    os.environ[UPSTREAM_ENV] = upstream
    if prices:
        os.environ[PRICES_ENV] = str(Path(prices).resolve())
    if config_file:
        os.environ["CCOBS_CONFIG"] = str(Path(config_file).resolve())
    if access_log_db:
        os.environ["CCOBS_ACCESS_LOG_DB"] = (
            access_log_db if is_postgres_url(access_log_db) else str(Path(access_log_db).resolve())
        )
    identities = identities or settings.identities
    if identities:
        # A bad file fails here, naming its line, not in a worker.
        load_identity_file(identities)
        os.environ[IDENTITIES_ENV] = str(Path(identities).resolve())
    if metrics_port is not None:
        os.environ[LISTEN_ENV] = f"{host}:{metrics_port}"
    configure_logging(settings.log_level, settings.log_format)
    raise_open_file_limit()  # two sockets per stream: 1024 would stop it near 500 streams
    multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        prepare_multiprocess_dir(multiprocess_dir)
    elif workers > 1:
        # Workers share counts through files, in a fresh directory per run.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ccobs-metrics-")
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": graceful_timeout,
    }
    if workers > 1:
        _serve_workers(uvicorn.Config(PROXY_APP, **options))
        return
    signal.signal(signal.SIGTERM, _exit_zero_on_sigterm)
    uvicorn.run(PROXY_APP, **options)


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
