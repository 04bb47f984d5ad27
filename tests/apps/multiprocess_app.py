"""A FastAPI app instrumented with ccobs, served by ``uvicorn --workers N`` in tests.

``tests/test_multiprocess.py`` runs it with ``PROMETHEUS_MULTIPROC_DIR`` set, so
every worker writes its metrics to shared files and ``/metrics`` (answered by
whichever worker accepts the scrape) must add up all of them. Each route
reports ``os.getpid()`` so the test can tell which worker served it.

Importing this module registers metrics in prometheus_client's default
registry; only the uvicorn subprocess imports it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel

from ccobs import PrometheusMetrics, configure_logging, current_request_context, instrument

HOLD_DIR_ENV = "CCOBS_TEST_HOLD_DIR"
"""Directory for ``/hold``: a request creates an empty file ``held-<pid>-<id>`` there on arrival
and stays in flight until a file named ``release`` appears."""
HOLD_PIN_SECONDS = 0.2
"""How long ``/hold`` blocks its worker's event loop on arrival, so that a
connection made meanwhile is accepted by another worker."""

RELEASE_FILE = "release"
SERVICE_TYPE = "proxy_service"

# Per-request log lines would bury what the test prints on failure: the server's output.
configure_logging(level="WARNING", fmt="json")

app = FastAPI()
metrics = instrument(app, PrometheusMetrics(), service_type=SERVICE_TYPE)


class Usage(BaseModel):
    """What a proxy learns from the upstream response, as the test dictates it."""

    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float


@app.get("/health")
async def health() -> dict[str, object]:
    return {"status": "ok", "pid": os.getpid()}


@app.post("/v1/messages")
async def messages(usage: Usage) -> dict[str, int]:
    """Record the usage as an instrumented proxy would after the upstream answered."""
    ctx = current_request_context()
    assert ctx is not None, "the ccobs middleware must wrap every route"
    ctx.add_metadata(model=usage.model)
    metrics.record_tokens(usage.input_tokens, "input", usage.model, SERVICE_TYPE)
    metrics.record_tokens(usage.output_tokens, "output", usage.model, SERVICE_TYPE)
    metrics.record_cost(usage.cost_usd, usage.model, "total", SERVICE_TYPE)
    return {"pid": os.getpid()}


@app.get("/hold")
async def hold() -> dict[str, int]:
    """Stay in flight until the test releases every held request at once.

    Idle workers race for each new connection on the shared socket and the
    kernel often favours one of them; blocking this worker for a moment after
    announcing the request lets the test's next connection reach another one.
    """
    hold_dir = Path(os.environ[HOLD_DIR_ENV])
    pid = os.getpid()
    (hold_dir / f"held-{pid}-{uuid.uuid4().hex}").touch()
    time.sleep(HOLD_PIN_SECONDS)  # noqa: ASYNC251 - blocking on purpose, see the docstring
    release = hold_dir / RELEASE_FILE
    while not release.exists():  # noqa: ASYNC110 - the test releases from another process
        await asyncio.sleep(0.01)
    return {"pid": pid}
