from collections.abc import Iterator
from pathlib import Path

import pytest
from realservers import ServerProcess, start_pushgateway, start_victoria_metrics


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- real servers (tests/realservers.py) --------------------------------------
# Function-scoped: each binary is ready in ~0.1 s on loopback, so every test
# gets an empty server rather than state left by the previous one.


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running Pushgateway with no persistence, stopped after the test."""
    with start_pushgateway(tmp_path) as server:
        yield server


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running single-node VictoriaMetrics (no query latency offset)."""
    with start_victoria_metrics(tmp_path) as server:
        yield server
