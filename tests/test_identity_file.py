"""A bad identity file stops `ccobs proxy` and `ccobs demo` at start: exit 2, one line on stderr
naming the file, the line and the field, no traceback, nothing served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ccobs.budgets import BudgetFileError, load_budgets
from ccobs.identity import Identities
from ccobs.identity_file import check_budget_keys, load_identity_file

ALICE = """keys:
  - fingerprint: 9f2c4e1a7b3d5f60
    alias: alice
    team: platform
"""

# name -> (file text, the line and field the error must name)
BAD_FILES: dict[str, tuple[str, str]] = {
    "key budget of an alias not under keys": (
        ALICE + "budgets:\n  - key: bob\n    period: 1d\n    usd: 20\n",
        ":6: budgets[0].key: no key with alias 'bob'",
    ),
    "unknown field of a key": (
        ALICE + "    colour: blue\n",
        ":5: keys[0].colour: unknown field",
    ),
    "unknown field of a budget": (
        ALICE + "budgets:\n  - team: platform\n    period: 1d\n    usd: 20\n    cap: 3\n",
        ":9: budgets[0].cap: unknown field",
    ),
    "malformed fingerprint": (
        ALICE.replace("9f2c4e1a7b3d5f60", "9f2c4e1a7b3d5fZZ"),
        ":2: keys[0].fingerprint: malformed fingerprint",
    ),
    "negative budget": (
        ALICE + "budgets:\n  - team: platform\n    period: 30d\n    usd: -5\n",
        ":8: budgets[0].usd: must be a positive number",
    ),
    "duplicate alias": (
        ALICE + "  - fingerprint: 0123456789abcdef\n    alias: alice\n    team: research\n",
        ":6: keys[1].alias: duplicate alias 'alice'",
    ),
}
DEMO_CASES = ("key budget of an alias not under keys", "malformed fingerprint", "negative budget")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-identities.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _ccobs(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccobs.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _assert_refused(done: subprocess.CompletedProcess[str], path: Path, where: str) -> None:
    assert done.returncode == 2, done.stderr
    assert f"{path}{where}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("case", BAD_FILES)
def test_the_proxy_refuses_a_bad_identity_file_naming_file_line_and_field(
    case: str, tmp_path: Path
) -> None:
    text, where = BAD_FILES[case]
    path = _write(tmp_path, text)

    done = _ccobs(
        "proxy", "--identities", str(path), "--port", "0", "--upstream", "http://127.0.0.1:9",
        cwd=tmp_path,
    )  # fmt: skip

    _assert_refused(done, path, where)


@pytest.mark.parametrize("case", DEMO_CASES)
def test_the_demo_refuses_a_bad_identity_file_naming_file_line_and_field(
    case: str, tmp_path: Path
) -> None:
    text, where = BAD_FILES[case]
    path = _write(tmp_path, text)

    done = _ccobs(
        "demo", "--identities", str(path), "--port", "0", "--duration", "1",
        "--log-file", str(tmp_path / "demo.log"),
        cwd=tmp_path,
    )  # fmt: skip

    _assert_refused(done, path, where)


def test_a_key_budget_of_a_listed_alias_loads(tmp_path: Path) -> None:
    path = _write(tmp_path, ALICE + "budgets:\n  - key: alice\n    period: 1d\n    usd: 20\n")

    identities, budgets = load_identity_file(path)

    assert [b.name for b in budgets] == ["alice"]
    assert len(identities) == 1


def test_a_team_budget_needs_no_listed_key(tmp_path: Path) -> None:
    path = _write(tmp_path, ALICE + "budgets:\n  - team: finance\n    period: 1d\n    usd: 20\n")

    assert [b.name for b in load_identity_file(path)[1]] == ["finance"]


def test_the_unknown_alias_error_lists_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD_FILES["key budget of an alias not under keys"][0])

    with pytest.raises(BudgetFileError, match=r"\(aliases: alice\)"):
        check_budget_keys(Identities.load(path), load_budgets(path), str(path))
