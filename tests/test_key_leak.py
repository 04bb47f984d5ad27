"""The key-leak proof: attribution hashes the key, and nothing of the key comes out.

Attribution reads the credential on every request, so it is the newest way a
key could leak. ``ccobs proxy`` (the real command, a separate process, its log
at DEBUG, an SQLite access log, an identity file naming some of the keys)
relays, to ``ccobs upstream``, requests carrying real-looking keys (an
Anthropic API key, an OpenAI project key, a Claude OAuth token) in every place
a client can put one: ``x-api-key``, ``Authorization: Bearer``, a cookie, the
query string (``?key=``), and the headers attribution reads (the session id,
the user agent), on each API, streamed and not, and on passed-through paths.

Then every place the proxy writes is searched for each key and for every
8-character piece of it: the ``/metrics`` exposition (labels), every log
line, every table of the access-log database and its files as bytes, and
every response body and header the clients got. The records must hold the
keys' fingerprints: the search would prove nothing if attribution had not run.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ccobs.identity import fingerprint
from ccobs.stack.processes import ServerProcess, start_server

WINDOW = 8
"""A piece of a key this long is searched for: shorter ones occur by chance."""


def _random(tag: str, chars: int) -> str:
    digest = hashlib.sha512(tag.encode()).digest() + hashlib.sha512(tag[::-1].encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:chars]


ANTHROPIC_KEY = f"sk-ant-api03-{_random('anthropic', 93)}AA"
"""An Anthropic API key's shape: sk-ant-api03-, 93 base64url characters, AA."""
OPENAI_KEY = f"sk-proj-{_random('openai', 156)}"
"""An OpenAI project key's shape."""
OAUTH_TOKEN = f"sk-ant-oat01-{_random('oauth', 93)}AA"
"""A Claude subscription's OAuth token (Claude Code sends it as a bearer token)."""
UNNAMED_KEY = f"sk-ant-api03-{_random('unnamed', 93)}AA"
"""A key the identity file does not name."""
COOKIE_KEY = f"sk-ant-api03-{_random('cookie', 93)}AA"
QUERY_KEY = f"sk-ant-api03-{_random('query', 93)}AA"
SESSION_KEY = "sk-" + "".join(c for c in _random("session", 120) if c.isalnum())[:48]
"""A legacy OpenAI key's shape (sk-, 48 letters and digits) sent as a session id: short
enough for the session's length bound."""
ODD_SESSION_KEY = f"sk-{_random('odd-session', 40)}"
"""A key-like session id the log redaction's patterns miss (sk-_...): dropped all the same."""
AGENT_KEY = f"sk-ant-api03-{_random('agent', 93)}AA"

KEYS = {
    "x-api-key": ANTHROPIC_KEY,
    "authorization (OpenAI key)": OPENAI_KEY,
    "authorization (OAuth token)": OAUTH_TOKEN,
    "x-api-key (unnamed)": UNNAMED_KEY,
    "cookie": COOKIE_KEY,
    "?key=": QUERY_KEY,
    "session header": SESSION_KEY,
    "session header (odd)": ODD_SESSION_KEY,
    "user-agent": AGENT_KEY,
}
"""Where a key went in -> the key."""


PUBLIC_PREFIXES = ("sk-ant-api03-", "sk-ant-oat01-", "sk-proj-", "sk-")
"""Every key of a kind starts alike: a piece within the prefix identifies no key."""


def pieces(key: str) -> set[str]:
    """Every 8-character piece of ``key`` that reaches past its public prefix."""
    prefix = next(p for p in PUBLIC_PREFIXES if key.startswith(p))
    start = max(0, len(prefix) - WINDOW + 1)
    return {key[i : i + WINDOW] for i in range(start, len(key) - WINDOW + 1)}


def leaks(haystack: str) -> dict[str, list[str]]:
    """Each key with a piece of it in ``haystack``, and the first few such pieces."""
    found = {}
    for place, key in KEYS.items():
        hits = sorted(piece for piece in pieces(key) if piece in haystack)
        if hits:
            found[place] = hits[:3]
    return found


def _ccobs_command() -> str:
    command = Path(sys.executable).with_name("ccobs")
    if not command.exists():
        pytest.fail(f"{command} is missing: run `make install`.", pytrace=False)
    return str(command)


@dataclass
class Leftovers:
    """Everything the proxy wrote or answered, once the traffic was over."""

    metrics: str
    log: str
    database_rows: str
    database_bytes: list[tuple[Path, bytes]]
    responses: list[str]
    fingerprints: set[str]


def _requests(url: str) -> Iterator[tuple[str, str, dict[str, str], dict[str, object] | None]]:
    """(method, url, headers, json body) of each request."""
    claude_code = {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-app": "cli"}
    message = {"model": "claude-sonnet-4-6", "max_tokens": 20, "messages": [{"role": "user",
               "content": "hi"}]}  # fmt: skip
    chat = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    responses = {"model": "gpt-4.1-mini", "input": "hi", "max_output_tokens": 20}
    for stream in (False, True):
        body = {**message, "stream": stream}
        yield "POST", f"{url}/v1/messages", {"x-api-key": ANTHROPIC_KEY}, body
        yield "POST", f"{url}/v1/messages?beta=true", {
            **claude_code, "authorization": f"Bearer {OAUTH_TOKEN}",
            "x-claude-code-session-id": SESSION_KEY,
        }, body  # fmt: skip
        yield "POST", f"{url}/v1/chat/completions", {
            "authorization": f"Bearer {OPENAI_KEY}"}, {**chat, "stream": stream}  # fmt: skip
        yield "POST", f"{url}/v1/responses", {
            "authorization": f"Bearer {OPENAI_KEY}", "originator": "codex_exec",
            "session-id": ODD_SESSION_KEY}, {**responses, "stream": stream}  # fmt: skip
    yield "POST", f"{url}/v1/messages", {"x-api-key": UNNAMED_KEY, "user-agent": AGENT_KEY}, message
    yield "POST", f"{url}/v1/messages", {"cookie": f"session={COOKIE_KEY}; theme=dark"}, message
    yield "POST", f"{url}/v1/messages?key={QUERY_KEY}", {}, message
    yield "POST", f"{url}/v1/messages/count_tokens?beta=true", {
        **claude_code, "x-api-key": ANTHROPIC_KEY}, message  # fmt: skip
    yield "GET", f"{url}/v1/models?key={QUERY_KEY}", {"x-api-key": ANTHROPIC_KEY}, None
    yield "POST", f"{url}/v1/messages", {"x-api-key": ANTHROPIC_KEY,
        "x-mock-status": "429"}, message  # fmt: skip
    yield "POST", f"{url}/v1/messages", {"x-api-key": ANTHROPIC_KEY}, None  # the proxy's 400


@pytest.fixture(scope="module")
def leftovers(tmp_path_factory: pytest.TempPathFactory) -> Leftovers:
    ccobs = _ccobs_command()
    tmp = tmp_path_factory.mktemp("key-leak")
    database = tmp / "access.db"
    identities = tmp / "identities.yaml"
    identities.write_text(
        "keys:\n"
        f"  - {{fingerprint: '{fingerprint(ANTHROPIC_KEY)}', alias: alice, team: platform}}\n"
        f"  - {{fingerprint: '{fingerprint(OPENAI_KEY)}', alias: bob, team: research}}\n"
        f"  - {{fingerprint: '{fingerprint(OAUTH_TOKEN)}', alias: carol, team: research}}\n"
    )
    upstream = start_server(
        ccobs,
        lambda _dir, port: [
            "upstream",
            "--port",
            str(port),
            "--latency",
            "0.01",
            "--ttft",
            "0.01",
            "--error-rate",
            "0",
        ],
        workdir=tmp / "upstream",
        ready_path="/health",
        name="ccobs-upstream",
    )
    proxy: ServerProcess | None = None
    log = ""
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
                "--identities",
                str(identities),
            ],
            workdir=tmp / "proxy",
            ready_path="/health",
            name="ccobs-proxy",
            env={"CCOBS_LOG_LEVEL": "DEBUG", "CCOBS_LOG_FORMAT": "json"},
        )
        responses = []
        with httpx.Client(timeout=15) as client:
            for method, url, headers, body in _requests(proxy.url):
                response = client.request(method, url, headers=headers, json=body)
                responses.append(
                    f"{response.status_code} {list(response.headers.multi_items())}\n"
                    + response.text
                )
        metrics = httpx.get(proxy.url + "/metrics", timeout=10).text
    finally:
        if proxy is not None:
            proxy.stop()  # flushes the access log
            log = proxy.log_path.read_text(errors="replace")
        upstream.stop()
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [
            n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        rows = [repr(row) for t in tables for row in connection.execute(f'SELECT * FROM "{t}"')]
    finally:
        connection.close()
    files = sorted(database.parent.glob(database.name + "*"))
    return Leftovers(
        metrics=metrics,
        log=log,
        database_rows="\n".join(rows),
        database_bytes=[(path, path.read_bytes()) for path in files],
        responses=responses,
        fingerprints={line.split('"key_fingerprint": "')[1][:16]
                      for line in log.splitlines() if '"key_fingerprint": "' in line},
    )  # fmt: skip


def test_every_key_is_distinct_in_every_piece() -> None:
    """A piece shared by two keys, or found in ordinary text, would blur what leaked where."""
    all_pieces = [pieces(key) for key in KEYS.values()]

    assert sum(map(len, all_pieces)) == len(set().union(*all_pieces))


def test_attribution_ran_on_the_keys_it_was_given(leftovers: Leftovers) -> None:
    """The named keys and the unnamed one reached the records as fingerprints."""
    expected = {fingerprint(key) for key in (ANTHROPIC_KEY, OPENAI_KEY, OAUTH_TOKEN, UNNAMED_KEY)}

    assert expected <= leftovers.fingerprints
    assert '"key_alias": "carol"' in leftovers.log  # the OAuth token, named by the file


def test_every_request_was_answered(leftovers: Leftovers) -> None:
    statuses = [int(response.split(" ", 1)[0]) for response in leftovers.responses]

    assert statuses.count(200) == len(statuses) - 2
    assert sorted(s for s in statuses if s != 200) == [400, 429]


def test_no_piece_of_a_key_in_the_metrics(leftovers: Leftovers) -> None:
    assert "ccproxy_requests_total" in leftovers.metrics

    assert leaks(leftovers.metrics) == {}


def test_no_piece_of_a_key_in_any_log_line(leftovers: Leftovers) -> None:
    assert '"event": "request_success"' in leftovers.log

    assert leaks(leftovers.log) == {}


def test_no_piece_of_a_key_in_any_stored_record(leftovers: Leftovers) -> None:
    assert leftovers.database_rows

    assert leaks(leftovers.database_rows) == {}


def test_no_piece_of_a_key_in_the_database_files(leftovers: Leftovers) -> None:
    found = {
        path.name: leaks(content.decode("latin-1"))
        for path, content in leftovers.database_bytes
        if leaks(content.decode("latin-1"))
    }

    assert found == {}


def test_no_piece_of_a_key_in_any_response(leftovers: Leftovers) -> None:
    assert leaks("\n".join(leftovers.responses)) == {}
