"""Run the real coding-agent clients (Claude Code, Codex CLI) against a loopback URL.

What people put behind an LLM proxy are these agents, not SDK snippets, and
they send what no hand-written request does: probes, beta query strings,
token counting, typed event streams. So the suite runs the clients' own
native binaries, the way ``realservers`` runs the Debian monitoring binaries.

The versions are pinned in ``tests/clients/package.json`` (and its lock file);
``scripts/install-npm-clients.sh`` (run by ``make test``) installs them with
``npm ci --ignore-scripts``: the native binaries ship inside the registry
packages, so no install script, and no download outside npm, is needed.

Every run is sealed off: a throwaway ``HOME`` (the client's config, sessions
and caches land there and nowhere else), a fake key, telemetry, error
reporting, auto-update and every other non-essential call switched off, an
environment built from scratch (so a developer's real key in the shell can
never reach a test server), and ``HTTPS_PROXY`` pointing at a closed loopback
port with ``NO_PROXY`` for loopback, so that a call the switches miss fails at
once instead of leaving the machine. Each run is bounded by a timeout; the
client's whole process group is killed when it ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "CLAUDE_QUIET_ENV",
    "CLIENTS_DIR",
    "CODEX_MODEL",
    "FAKE_ANTHROPIC_KEY",
    "FAKE_OPENAI_KEY",
    "INSTALL_HINT",
    "OPENAI_KEY_ENV",
    "ClientRun",
    "claude_binary",
    "codex_binary",
    "codex_config",
    "run_claude",
    "run_codex",
]

CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
"""The npm project pinning the clients' versions; ``node_modules/`` is git-ignored."""

_CLAUDE = "node_modules/@anthropic-ai/claude-code-linux-x64/claude"
# The optional dependency is an npm alias (npm:@openai/codex@<version>-linux-x64): the
# target triple directory under vendor/ is the package's to name.
_CODEX = "node_modules/@openai/codex-linux-x64/vendor/*/bin/codex"

INSTALL_HINT = (
    "Run `make test`, or `scripts/install-npm-clients.sh`, which installs the pinned "
    "clients of tests/clients/package-lock.json with `npm ci --ignore-scripts`."
)

# Shaped like real keys, so a redaction rule keyed on a vendor's prefix is exercised, and
# unique, so a test can search for them in everything the proxy writes.
FAKE_ANTHROPIC_KEY = "sk-ant-api03-ccobsFAKEclaudeKEY0000000000000000000000000000-AA"
FAKE_OPENAI_KEY = "sk-proj-ccobsFAKEcodexKEY00000000000000000000000000000000000"
OPENAI_KEY_ENV = "CCOBS_TEST_OPENAI_API_KEY"
"""The variable Codex's provider entry names (``env_key``) for its key."""

CODEX_MODEL = "gpt-5.1"
"""A model ccobs has a price for, so cost is recorded; Codex's default is a moving target."""

RUN_TIMEOUT = 60.0
"""Seconds a client gets for a one-answer task against a loopback server (it needs ~1 s)."""

# A closed loopback port: anything that tries to leave the machine through HTTP(S)_PROXY
# gets "connection refused" at once. Port 9 (discard) is not served on these machines.
_NOWHERE = "http://127.0.0.1:9"
_SEALED_ENV = {
    "HTTPS_PROXY": _NOWHERE,
    "HTTP_PROXY": _NOWHERE,
    "https_proxy": _NOWHERE,
    "http_proxy": _NOWHERE,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "LANG": "C.UTF-8",
}

CLAUDE_QUIET_ENV = {
    # Claude Code's documented switches (code.claude.com/docs/en/env-vars).
    # CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC (below) implies these four; each is set anyway
    # so that a renamed umbrella still leaves telemetry, error reports and the updater off.
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
    # Without it Claude Code also fetches its bootstrap, the org's fast-mode status and
    # the MCP registry from api.anthropic.com (whatever ANTHROPIC_BASE_URL says), and
    # sends its HEAD /api/hello connectivity probe to ANTHROPIC_BASE_URL.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_COST_WARNINGS": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
}


@dataclass(frozen=True)
class ClientRun:
    """One finished client run: what was run, how it ended, what it printed."""

    args: tuple[str, ...]
    returncode: int | None
    """``None`` when the run hit its timeout and was killed."""
    stdout: str
    stderr: str
    home: Path

    @property
    def answered(self) -> bool:
        """Exit 0 with something printed: the client completed its task."""
        return self.returncode == 0 and bool(self.stdout.strip())

    def describe(self, limit: int = 3000) -> str:
        """The run for an assertion message: command, exit, and both outputs (tails)."""
        ended = "timed out (killed)" if self.returncode is None else f"exit {self.returncode}"
        return (
            f"$ {' '.join(self.args)}\n{ended}\n"
            f"--- stdout ---\n{self.stdout[-limit:]}\n--- stderr ---\n{self.stderr[-limit:]}"
        )


def _require(relative: str) -> Path:
    """The binary under ``tests/clients``; fail the test with the fix when it is missing.

    Failing rather than skipping, as for the Debian binaries: a skipped client
    test looks green while proving nothing.
    """
    found = sorted(CLIENTS_DIR.glob(relative))
    if not found or not os.access(found[-1], os.X_OK):
        pytest.fail(f"{CLIENTS_DIR / relative} is missing. {INSTALL_HINT}", pytrace=False)
    return found[-1]


def claude_binary() -> Path:
    """Claude Code's native binary (the npm package's own ``bin`` is a placeholder)."""
    return _require(_CLAUDE)


def codex_binary() -> Path:
    """Codex CLI's native binary (the npm package's ``bin`` is a node launcher for it)."""
    return _require(_CODEX)


def _run(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, home: Path, timeout: float
) -> ClientRun:
    """Run to completion or ``timeout``; kill the whole process group either way.

    The clients spawn helpers (shell snapshots, sandbox helpers); a session of
    their own lets one ``killpg`` reach them all, so nothing outlives the test.
    """
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    returncode: int | None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        returncode = None
    finally:
        _kill_group(process)
        if process.poll() is None:
            process.kill()
            process.wait()
    return ClientRun(
        args=tuple(args),
        returncode=returncode,
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace"),
        home=home,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _base_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **_SEALED_ENV}


def run_claude(
    base_url: str,
    prompt: str,
    *,
    home: Path,
    api_key: str = FAKE_ANTHROPIC_KEY,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> ClientRun:
    """``claude -p PROMPT`` with ``ANTHROPIC_BASE_URL=base_url`` and a fake key.

    ``-p`` (print mode) answers once and exits; a slash command as the prompt
    (``/context``) runs that command instead, which is how a test makes Claude
    Code call ``count_tokens``. ``extra_env`` switches features on, e.g.
    ``CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`` for ``GET /v1/models``.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **_base_env(home),
        **CLAUDE_QUIET_ENV,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        **(extra_env or {}),
    }
    args = [str(claude_binary()), "-p", prompt, *extra_args]
    return _run(args, env, cwd=home, home=home, timeout=timeout)


def codex_config(base_url: str, *, model: str = CODEX_MODEL) -> str:
    """``$CODEX_HOME/config.toml``: one provider at ``base_url``, nothing else reachable.

    Codex appends ``/responses`` to the provider's ``base_url`` (no ``/v1`` of
    its own), hence ``/v1`` here. ``analytics``, ``feedback``, the update check
    and plugins (whose start-up sync calls GitHub and chatgpt.com) are off;
    ``codex exec --strict-config`` accepts every key.
    """
    return f"""\
model = "{model}"
model_provider = "ccobs"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[model_providers.ccobs]
name = "ccobs proxy"
base_url = "{base_url.rstrip("/")}/v1"
env_key = "{OPENAI_KEY_ENV}"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
"""


def run_codex(
    base_url: str,
    prompt: str,
    *,
    home: Path,
    api_key: str = FAKE_OPENAI_KEY,
    model: str = CODEX_MODEL,
    timeout: float = RUN_TIMEOUT,
) -> ClientRun:
    """``codex exec PROMPT`` with a provider at ``base_url`` and a fake key.

    Non-interactive by construction: ``exec`` never prompts, approval is
    ``never``, the sandbox read-only (a one-answer task runs no command), stdin
    is closed, ``--ephemeral`` keeps no session files, and
    ``--skip-git-repo-check`` lets it work in a bare directory.
    """
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config(base_url, model=model))
    workdir = home / "work"
    workdir.mkdir(exist_ok=True)
    env = {**_base_env(home), "CODEX_HOME": str(codex_home), OPENAI_KEY_ENV: api_key}
    args = [
        str(codex_binary()),
        "exec",
        "--strict-config",
        "--skip-git-repo-check",
        "--ephemeral",
        "--color",
        "never",
        "--cd",
        str(workdir),
        prompt,
    ]
    return _run(args, env, cwd=workdir, home=home, timeout=timeout)
