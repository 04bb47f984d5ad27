"""The apps the middleware benchmark serves: one trivial endpoint, three ways.

Each is a factory (``module:function``) so uvicorn builds it in the server
subprocess. Logging is configured the same way for all three (JSON at
WARNING), so only the instrumentation differs; ``ccobs_access_log`` adds
ccobs's per-request access-log line at INFO, written to ``/dev/null``.
"""

from __future__ import annotations

from fastapi import FastAPI


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _logging(level: str) -> None:
    from ccobs.logging import configure_logging

    configure_logging(level, "json", stream=open("/dev/null", "w"))  # noqa: SIM115


def plain() -> FastAPI:
    _logging("WARNING")
    return _app()


def ccobs() -> FastAPI:
    import ccobs as lib

    _logging("WARNING")
    app = _app()
    lib.instrument(app, lib.get_metrics(settings=lib.ObservabilitySettings()))
    return app


def ccobs_access_log() -> FastAPI:
    import ccobs as lib

    _logging("INFO")
    app = _app()
    lib.instrument(app, lib.get_metrics(settings=lib.ObservabilitySettings()))
    return app


def instrumentator() -> FastAPI:
    from prometheus_fastapi_instrumentator import Instrumentator

    _logging("WARNING")
    app = _app()
    Instrumentator().instrument(app).expose(app)
    return app
