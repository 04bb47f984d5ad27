"""Claude Code and Codex CLI, the real binaries, through ``ccobs proxy`` to ``ccobs upstream``.

The promise a user tests first is "point your agent at the proxy and watch
it": so each test starts the mock upstream and the proxy as the user would
(the ``ccobs`` command, real processes on loopback ports), runs one client for
one task, and then checks what the user would look at: the client finished
with an answer, its requests, tokens and cost are on ``/metrics`` under its
model, a healthy session shows no errors, and its key is nowhere the proxy
writes (``/metrics``, its log, its access-log database).

The clients come from npm at pinned versions (``tests/clients``); see
``realclients`` for how a run is sealed off from the network and the user's
own configuration. The ``*_sends_*`` tests pin what each client sends, seen by
a recorder rather than by ccobs (``client_recorder``), so that a client
upgrade that changes its traffic fails there, with the difference, before it
fails obscurely in the proxy tests.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import realclients
from client_recorder import RecordedRequest, recording_upstream
from prometheus_client.parser import text_string_to_metric_families
from realclients import (
    CODEX_MODEL,
    FAKE_ANTHROPIC_KEY,
    FAKE_OPENAI_KEY,
    run_claude,
    run_codex,
)

from ccobs.catalog import COST, ERRORS, REQUESTS, TOKENS
from ccobs.identity import fingerprint
from ccobs.stack.processes import ServerProcess, start_server

pytestmark = pytest.mark.realclients

CLAUDE_MODEL = "claude-sonnet-4-5"
"""Passed with ``--model``: the default moves between Claude Code releases."""

PROMPT = "Reply with the single word: hello"


Sample = tuple[dict[str, str], float]


@dataclass
class ProxyChain:
    """``ccobs upstream`` and ``ccobs proxy`` in front of it, as separate processes."""

    upstream: ServerProcess
    proxy: ServerProcess
    access_log_db: Path

    def samples(self, name: str) -> list[Sample]:
        """Every sample called ``name`` on the proxy's ``/metrics`` now."""
        response = httpx.get(self.proxy.url + "/metrics", timeout=10)
        response.raise_for_status()
        return [
            (dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == name
        ]

    def metrics_text(self) -> str:
        response = httpx.get(self.proxy.url + "/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def log(self) -> str:
        return self.proxy.log_path.read_text(errors="replace")


def _ccobs_command() -> str:
    """The ``ccobs`` console script of the environment running the tests."""
    command = Path(sys.executable).with_name("ccobs")
    if not command.exists():
        pytest.fail(f"{command} is missing: run `make install`.", pytrace=False)
    return str(command)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ProxyChain]:
    """A fresh upstream and proxy per test, so ``/metrics`` holds one client's session."""
    ccobs = _ccobs_command()
    database = tmp_path / "access-log.sqlite"
    upstream = start_server(
        ccobs,
        # Fast answers: the tests are about what is recorded, not about latency.
        lambda _dir, port: [
            "upstream",
            "--port",
            str(port),
            "--latency",
            "0.05",
            "--ttft",
            "0.05",
            "--seed",
            "16",
        ],
        workdir=tmp_path / "upstream",
        ready_path="/health",
        name="ccobs-upstream",
    )
    try:
        proxy = start_server(
            ccobs,
            lambda _dir, port: [
                "proxy",
                "--port",
                str(port),
                "--upstream",
                upstream.url,
                "--access-log-db",
                str(database),
            ],
            workdir=tmp_path / "proxy",
            ready_path="/health",
            name="ccobs-proxy",
        )
        try:
            yield ProxyChain(upstream=upstream, proxy=proxy, access_log_db=database)
        finally:
            proxy.stop()
    finally:
        upstream.stop()


def _series(samples: list[Sample]) -> str:
    return "\n".join(f"  {labels} {value}" for labels, value in samples) or "  (no series)"


def assert_recorded(chain: ProxyChain, *, model: str, endpoint: str) -> None:
    """Requests answered 200 on ``endpoint``, input and output tokens and cost, all by ``model``."""
    requests = chain.samples(REQUESTS.full_name())
    served = sum(
        value
        for labels, value in requests
        if labels.get("model") == model
        and labels.get("endpoint") == endpoint
        and labels.get("status") == "200"
    )
    assert served >= 1, (
        f"no request counted with model={model!r}, endpoint={endpoint!r}, status 200; "
        f"{REQUESTS.full_name()}:\n{_series(requests)}\n{chain.proxy.log_tail()}"
    )
    tokens = chain.samples(TOKENS.full_name())
    by_type = {labels["type"]: value for labels, value in tokens if labels.get("model") == model}
    for token_type in ("input", "output"):
        assert by_type.get(token_type, 0) > 0, (
            f"no {token_type} tokens recorded for model={model!r}; "
            f"{TOKENS.full_name()}:\n{_series(tokens)}"
        )
    costs = chain.samples(COST.full_name())
    total = sum(
        value
        for labels, value in costs
        if labels.get("model") == model and labels.get("cost_type") == "total"
    )
    assert total > 0, f"no cost recorded for model={model!r}; {COST.full_name()}:\n{_series(costs)}"


def assert_no_errors(chain: ProxyChain) -> None:
    """A healthy session: every ``errors_total`` series (if initialised at all) is zero."""
    errors = [(labels, value) for labels, value in chain.samples(ERRORS.full_name()) if value]
    assert not errors, (
        f"a healthy client session recorded errors; {ERRORS.full_name()}:\n{_series(errors)}\n"
        f"{REQUESTS.full_name()}:\n{_series(chain.samples(REQUESTS.full_name()))}\n"
        f"{chain.proxy.log_tail()}"
    )


def _access_log_records(database: Path) -> int:
    """Rows in every table of the access-log database, whatever its schema."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        return sum(
            connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables
        )
    finally:
        connection.close()


def assert_key_nowhere(chain: ProxyChain, key: str) -> None:
    """``key`` is not on ``/metrics``, in the proxy's log or in its access-log database.

    The proxy is stopped first so that its access log is flushed; the database
    files are searched as bytes, so the check holds whatever the schema, and
    they must hold records, or the search would prove nothing.
    """
    metrics = chain.metrics_text()
    chain.proxy.stop()
    log = chain.log()
    assert key not in metrics, "the client's key appears on /metrics"
    assert key not in log, f"the client's key appears in the proxy's log {chain.proxy.log_path}"
    assert chain.access_log_db.exists(), f"no access-log database at {chain.access_log_db}"
    assert _access_log_records(chain.access_log_db) > 0, "the access-log database holds no records"
    for path in sorted(chain.access_log_db.parent.glob(chain.access_log_db.name + "*")):
        assert key.encode() not in path.read_bytes(), f"the client's key appears in {path}"


def assert_attributed(chain: ProxyChain, *, endpoint: str, client_app: str, key: str) -> None:
    """Every access-log line of ``endpoint`` names the client app, a session and the key's
    fingerprint (the proxy has no identity file: ``unassigned``). Read once the proxy has
    stopped (``assert_key_nowhere``), so its log is complete."""
    lines = [
        json.loads(text)
        for text in chain.log().splitlines()
        if text.startswith("{") and '"logger": "ccobs.request"' in text
    ]
    served = [line for line in lines if line.get("endpoint") == endpoint]
    assert served, f"no access-log line for {endpoint}:\n{chain.log()[-3000:]}"
    for line in served:
        assert line.get("client_app") == client_app, line
        assert line.get("session_id"), f"no session id on the line: {line}"
        assert line.get("team") == "unassigned", line
        assert line.get("key_fingerprint") == fingerprint(key), line


# -- Claude Code -----------------------------------------------------------------------------


def test_claude_code_answers_through_the_proxy(chain: ProxyChain, tmp_path: Path) -> None:
    """``claude -p``: one streamed ``POST /v1/messages?beta=true``, counted under its model."""
    run = run_claude(
        chain.proxy.url, PROMPT, home=tmp_path / "home", extra_args=["--model", CLAUDE_MODEL]
    )
    assert run.answered, f"Claude Code did not answer:\n{run.describe()}"
    assert_recorded(chain, model=CLAUDE_MODEL, endpoint="/v1/messages")
    assert_no_errors(chain)
    assert_key_nowhere(chain, FAKE_ANTHROPIC_KEY)
    assert_attributed(
        chain, endpoint="/v1/messages", client_app="claude-code", key=FAKE_ANTHROPIC_KEY
    )


def test_claude_code_counts_tokens_through_the_proxy(chain: ProxyChain, tmp_path: Path) -> None:
    """``claude -p /context`` sends ``POST /v1/messages/count_tokens?beta=true`` (about 25 of
    them): each is passed through and counted under a bounded route, and none is an error.

    Counting tokens consumes none: the API reports no usage for it, so no tokens
    or cost may be recorded.
    """
    run = run_claude(
        chain.proxy.url, "/context", home=tmp_path / "home", extra_args=["--model", CLAUDE_MODEL]
    )
    assert run.answered, f"Claude Code did not answer:\n{run.describe()}"
    requests = chain.samples(REQUESTS.full_name())
    counted = sum(
        value
        for labels, value in requests
        if "count_tokens" in labels.get("endpoint", "") and labels.get("status") == "200"
    )
    assert counted >= 1, (
        "no count_tokens request counted with status 200 under a count_tokens route; "
        f"{REQUESTS.full_name()}:\n{_series(requests)}\n{chain.proxy.log_tail()}"
    )
    assert_no_errors(chain)
    used = [
        (labels, value)
        for name in (TOKENS.full_name(), COST.full_name())
        for labels, value in chain.samples(name)
        if value
    ]
    assert not used, f"counting tokens was recorded as tokens or cost used:\n{_series(used)}"
    assert_key_nowhere(chain, FAKE_ANTHROPIC_KEY)


def test_claude_code_model_discovery_through_the_proxy(chain: ProxyChain, tmp_path: Path) -> None:
    """With gateway model discovery on, Claude Code first sends ``GET /v1/models?limit=1000``:
    passed through, counted under a bounded route, no error; the session still answers."""
    run = run_claude(
        chain.proxy.url,
        PROMPT,
        home=tmp_path / "home",
        extra_args=["--model", CLAUDE_MODEL],
        extra_env={"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"},
    )
    assert run.answered, f"Claude Code did not answer:\n{run.describe()}"
    requests = chain.samples(REQUESTS.full_name())
    listed = sum(
        value
        for labels, value in requests
        if "models" in labels.get("endpoint", "")
        and labels.get("method") == "GET"
        and labels.get("status") == "200"
    )
    assert listed >= 1, (
        "no GET of a models route counted with status 200; "
        f"{REQUESTS.full_name()}:\n{_series(requests)}\n{chain.proxy.log_tail()}"
    )
    assert_recorded(chain, model=CLAUDE_MODEL, endpoint="/v1/messages")
    assert_no_errors(chain)
    assert_key_nowhere(chain, FAKE_ANTHROPIC_KEY)


# What Claude Code 2.1.332 sends before its first request when non-essential traffic is on
# (it is the preconnect: sent and forgotten, its answer is never read). The real client
# cannot send it here: with non-essential traffic on it also calls api.anthropic.com,
# whatever ANTHROPIC_BASE_URL says, and the suite stays on loopback. So it is replayed,
# header for header as captured, with the probes the issue names (HEAD and GET /).
CLAUDE_CODE_PROBES = (
    ("HEAD", "/api/hello"),
    ("HEAD", "/"),
    ("GET", "/"),
)
CLAUDE_CODE_PROBE_HEADERS = {"user-agent": "Bun/1.4.6", "accept": "*/*"}


def test_claude_code_connectivity_probe_is_no_error(chain: ProxyChain) -> None:
    """The probe is answered as a healthy server would, and is neither traffic nor an error."""
    statuses = {}
    for method, path in CLAUDE_CODE_PROBES:
        response = httpx.request(
            method, chain.proxy.url + path, headers=CLAUDE_CODE_PROBE_HEADERS, timeout=10
        )
        statuses[f"{method} {path}"] = response.status_code
    for probe in ("HEAD /", "GET /"):
        assert statuses[probe] == 200, f"{probe} is not answered 200: {statuses}"
    assert_no_errors(chain)
    traffic = [
        (labels, value)
        for labels, value in chain.samples(REQUESTS.full_name())
        if value and labels.get("endpoint") in ("/", "unmatched")
    ]
    assert not traffic, f"probes of / counted as API traffic ({statuses}):\n{_series(traffic)}"


# -- Codex CLI -------------------------------------------------------------------------------


def test_codex_answers_through_the_proxy(chain: ProxyChain, tmp_path: Path) -> None:
    """``codex exec``: one streamed ``POST /v1/responses``, counted under its model."""
    run = run_codex(chain.proxy.url, PROMPT, home=tmp_path / "home")
    assert run.answered, f"Codex did not answer:\n{run.describe()}"
    assert_recorded(chain, model=CODEX_MODEL, endpoint="/v1/responses")
    assert_no_errors(chain)
    assert_key_nowhere(chain, FAKE_OPENAI_KEY)
    assert_attributed(chain, endpoint="/v1/responses", client_app="codex", key=FAKE_OPENAI_KEY)


# -- what the clients send, seen without ccobs ----------------------------------------------


def _describe(requests: list[RecordedRequest]) -> str:
    return "\n".join(f"  {r.target} -> {r.status} {r.header_values}" for r in requests)


def test_claude_code_sends_messages_then_count_tokens(tmp_path: Path) -> None:
    """``-p PROMPT``: one streamed ``/v1/messages?beta=true``; ``-p /context``: only
    ``/v1/messages/count_tokens?beta=true``. The key goes in ``x-api-key``."""
    with recording_upstream() as (server, recorder):
        hello = run_claude(
            server.url, PROMPT, home=tmp_path / "hello", extra_args=["--model", CLAUDE_MODEL]
        )
        assert hello.answered, f"Claude Code did not answer:\n{hello.describe()}"
        context = run_claude(
            server.url, "/context", home=tmp_path / "context", extra_args=["--model", CLAUDE_MODEL]
        )
        assert context.answered, f"Claude Code did not answer:\n{context.describe()}"
        requests = recorder.snapshot()
    seen = _describe(requests)
    targets = [request.target for request in requests]
    assert targets[0] == "POST /v1/messages?beta=true", seen
    assert len(targets) > 1, seen
    assert set(targets[1:]) == {"POST /v1/messages/count_tokens?beta=true"}, seen
    for request in requests:
        assert "x-api-key" in request.header_names, seen
        assert "authorization" not in request.header_names, seen
        assert request.header_values.get("anthropic-version") == "2023-06-01", seen
        assert request.header_values.get("x-app") == "cli", seen
        assert request.header_values.get("user-agent", "").startswith("claude-cli/"), seen
        assert "x-claude-code-session-id" in request.header_names, seen
        assert isinstance(request.body, dict), seen
        assert request.body.get("model") == CLAUDE_MODEL, seen
    message = requests[0].body
    assert message["stream"] is True, "Claude Code's message request is not streamed"
    expected = {"messages", "system", "tools", "max_tokens", "metadata"}
    assert expected <= set(message), sorted(message)
    for request in requests[1:]:
        assert sorted(request.body) == ["messages", "model", "tools"], sorted(request.body)
        betas = request.header_values.get("anthropic-beta", "").split(",")
        assert "token-counting-2024-11-01" in betas, seen


def test_claude_code_model_discovery_sends_get_models(tmp_path: Path) -> None:
    """``CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1``: ``GET /v1/models?limit=1000`` first,
    from Claude Code's own HTTP client (no ``x-stainless-*``), key in ``x-api-key``."""
    with recording_upstream() as (server, recorder):
        run = run_claude(
            server.url,
            PROMPT,
            home=tmp_path / "home",
            extra_args=["--model", CLAUDE_MODEL],
            extra_env={"CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"},
        )
        assert run.answered, f"Claude Code did not answer:\n{run.describe()}"
        requests = recorder.snapshot()
    seen = _describe(requests)
    targets = [request.target for request in requests]
    assert targets == ["GET /v1/models?limit=1000", "POST /v1/messages?beta=true"], seen
    listing = requests[0]
    assert "x-api-key" in listing.header_names, seen
    assert listing.header_values.get("anthropic-version") == "2023-06-01", seen
    assert listing.header_values.get("user-agent", "").startswith("claude-code/"), seen
    assert listing.body is None, seen


def test_codex_sends_one_streamed_responses_request(tmp_path: Path) -> None:
    """``codex exec``: one ``POST {base_url}/responses``, streamed, key as a bearer token."""
    with recording_upstream() as (server, recorder):
        run = run_codex(server.url, PROMPT, home=tmp_path / "home")
        assert run.answered, f"Codex did not answer:\n{run.describe()}"
        requests = recorder.snapshot()
    seen = _describe(requests)
    assert [request.target for request in requests] == ["POST /v1/responses"], seen
    (request,) = requests
    assert "authorization" in request.header_names, seen
    assert request.header_values.get("accept") == "text/event-stream", seen
    assert request.header_values.get("originator") == "codex_exec", seen
    assert request.header_values.get("user-agent", "").startswith("codex_exec/"), seen
    assert "session-id" in request.header_names, seen
    assert isinstance(request.body, dict), seen
    assert request.body.get("model") == CODEX_MODEL, seen
    assert request.body.get("stream") is True, "Codex's request is not streamed"
    assert {"input", "tools", "store"} <= set(request.body), sorted(request.body)


# -- installation --------------------------------------------------------------------------


def test_missing_client_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing client fails the test (never skips it) and says how to install it."""
    monkeypatch.setattr(realclients, "CLIENTS_DIR", tmp_path)
    for find in (realclients.claude_binary, realclients.codex_binary):
        with pytest.raises(pytest.fail.Exception) as failure:
            find()
        message = str(failure.value)
        assert str(tmp_path) in message
        assert "make test" in message
        assert "scripts/install-npm-clients.sh" in message
