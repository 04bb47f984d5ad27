"""Caller identity: the fingerprint, the identity file's strict loading, resolution, the CLI.

The fingerprint is the contract every other part of attribution (metrics,
budgets, the access-log database) and every operator's identity file rely
on: 16 lowercase hex characters of the SHA-256 of the credential as sent.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccobs.identity import (
    ANONYMOUS_ALIAS,
    UNASSIGNED_TEAM,
    Identities,
    IdentityFileError,
    credential_of,
    fingerprint,
    read_key,
)

KEY = "sk-ant-api03-" + "Fp7" * 30
KEY_FINGERPRINT = hashlib.sha256(KEY.encode()).hexdigest()[:16]
OTHER_KEY = "sk-proj-" + "Zq4" * 20


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "identities.yaml"
    path.write_text(text)
    return path


GOOD = f"""\
keys:
  - fingerprint: {KEY_FINGERPRINT}
    alias: alice
    team: platform
  - fingerprint: "{fingerprint(OTHER_KEY)}"
    alias: bob
    team: research
budgets:
  - team: platform
    period: 30d
    usd: 500
"""


# -- the fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_the_first_16_hex_of_the_sha256_of_the_credential() -> None:
    assert fingerprint(KEY) == hashlib.sha256(KEY.encode()).hexdigest()[:16]


def test_fingerprint_of_bytes_and_of_text_agree() -> None:
    assert fingerprint(KEY.encode()) == fingerprint(KEY)


def test_the_credential_is_the_x_api_key_before_the_bearer_token() -> None:
    assert credential_of(b"the-key", b"Bearer the-token") == b"the-key"


def test_the_credential_is_the_bearer_token_without_an_x_api_key() -> None:
    assert credential_of(None, b"Bearer the-token") == b"the-token"


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert credential_of(None, b"bearer the-token") == b"the-token"


def test_an_authorization_of_another_scheme_is_no_credential() -> None:
    assert credential_of(None, b"Basic dXNlcjpwYXNz") is None


# -- resolution ------------------------------------------------------------------------------


def test_a_named_key_resolves_to_its_team_alias_and_fingerprint(tmp_path: Path) -> None:
    identities = Identities.load(write(tmp_path, GOOD))

    assert identities.resolve({"x-api-key": KEY}) == ("platform", "alice", KEY_FINGERPRINT)


def test_a_bearer_token_resolves_like_an_x_api_key(tmp_path: Path) -> None:
    identities = Identities.load(write(tmp_path, GOOD))

    assert identities.resolve({"authorization": f"Bearer {OTHER_KEY}"})[:2] == ("research", "bob")


def test_an_unknown_key_is_unassigned_under_a_fingerprint_alias() -> None:
    assert Identities().resolve({"x-api-key": KEY}) == (
        UNASSIGNED_TEAM,
        f"key-{KEY_FINGERPRINT[:8]}",
        KEY_FINGERPRINT,
    )


def test_a_request_without_a_credential_is_anonymous_and_has_no_fingerprint() -> None:
    assert Identities().resolve({"user-agent": "curl/8.5.0"}) == (
        UNASSIGNED_TEAM,
        ANONYMOUS_ALIAS,
        None,
    )


def test_ten_thousand_distinct_keys_leave_the_identities_unchanged() -> None:
    """Resolution caches nothing: a flood of keys cannot grow what the proxy holds."""
    identities = Identities()
    for n in range(10_000):
        identities.resolve_credential(f"sk-flood-{n}".encode())

    assert len(identities) == 0
    assert identities.__slots__ == ("_by_fingerprint", "identities", "path")


# -- the file --------------------------------------------------------------------------------


def test_the_file_lists_its_identities_in_order(tmp_path: Path) -> None:
    identities = Identities.load(write(tmp_path, GOOD))

    assert [i.alias for i in identities.identities] == ["alice", "bob"]
    assert identities.teams == ("platform", "research")


def test_an_empty_file_names_nobody(tmp_path: Path) -> None:
    assert len(Identities.load(write(tmp_path, ""))) == 0


def test_an_all_digit_fingerprint_is_read_as_written(tmp_path: Path) -> None:
    """Unquoted, ``0123456789012345`` is a YAML number: the text is what counts."""
    path = write(tmp_path, "keys:\n  - {fingerprint: 0123456789012345, alias: a, team: t}\n")

    assert Identities.load(path).identities[0].fingerprint == "0123456789012345"


@pytest.mark.parametrize(
    ("text", "line", "field", "problem"),
    [
        ("keys: []\nowners: []\n", 2, "owners", "unknown field"),
        (
            "keys:\n  - fingerprint: 0123456789abcdef\n    alias: a\n    team: t\n    email: x\n",
            5,
            "keys[0].email",
            "unknown field",
        ),
        ("keys:\n  - {fingerprint: 0123456789ABCDEF, alias: a, team: t}\n", 2,
         "keys[0].fingerprint", "malformed fingerprint"),
        ("keys:\n  - {fingerprint: 0123456789abcde, alias: a, team: t}\n", 2,
         "keys[0].fingerprint", "malformed fingerprint"),
        ("keys:\n  - {fingerprint: sk-ant-api03-abcdef, alias: a, team: t}\n", 2,
         "keys[0].fingerprint", "malformed fingerprint"),
        (
            "keys:\n"
            "  - {fingerprint: 0123456789abcdef, alias: a, team: t}\n"
            "  - {fingerprint: 0123456789abcdee, alias: a, team: u}\n",
            3,
            "keys[1].alias",
            "duplicate alias 'a' (first on line 2)",
        ),
        (
            "keys:\n"
            "  - {fingerprint: 0123456789abcdef, alias: a, team: t}\n"
            "  - {fingerprint: 0123456789abcdef, alias: b, team: t}\n",
            3,
            "keys[1].fingerprint",
            "duplicate fingerprint",
        ),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: [a], team: t}\n", 2,
         "keys[0].alias", "expected a string"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: a, team: yes}\n", 2,
         "keys[0].team", "expected a string"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: a, team: 7}\n", 2,
         "keys[0].team", "expected a string"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: ~, team: t}\n", 2,
         "keys[0].alias", "expected a string"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, team: t}\n", 2,
         "keys[0].alias", "missing"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: 'a b', team: t}\n", 2,
         "keys[0].alias", "not a valid alias"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: key-0123abcd, team: t}\n", 2,
         "keys[0].alias", "reserved"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: anonymous, team: t}\n", 2,
         "keys[0].alias", "reserved"),
        ("keys:\n  - {fingerprint: 0123456789abcdef, alias: a, alias: b, team: t}\n", 2,
         "keys[0].alias", "given twice"),
        ("keys: {alice: platform}\n", 1, "keys", "expected a list"),
        ("keys:\n  - 0123456789abcdef\n", 2, "keys[0]", "expected a mapping"),
        ("- keys\n", 1, "(top level)", "expected a mapping"),
    ],
)  # fmt: skip
def test_a_bad_identity_file_fails_naming_the_file_the_line_and_the_field(
    tmp_path: Path, text: str, line: int, field: str, problem: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(IdentityFileError) as failure:
        Identities.load(path)

    assert str(failure.value).startswith(f"{path}:{line}: {field}: "), str(failure.value)
    assert problem in str(failure.value)


def test_a_file_that_is_not_yaml_fails_naming_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "keys:\n  - {fingerprint: [\n")

    with pytest.raises(IdentityFileError, match=rf"^{path}:3: not valid YAML"):
        Identities.load(path)


def test_a_missing_file_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(IdentityFileError, match="cannot read the identity file"):
        Identities.load(tmp_path / "missing.yaml")


def test_the_budgets_section_is_left_to_the_budgets_loader(tmp_path: Path) -> None:
    path = write(tmp_path, "budgets:\n  - {anything: goes, here: 1}\n")

    assert len(Identities.load(path)) == 0


# -- ccobs identities fingerprint ------------------------------------------------------------


def test_the_key_is_read_from_the_first_line_of_stdin() -> None:
    assert read_key(io.StringIO(KEY + "\n"), {}, None) == KEY


def test_the_key_is_read_from_the_named_environment_variable() -> None:
    assert read_key(io.StringIO(""), {"MY_KEY": KEY}, "MY_KEY") == KEY


def test_an_unset_variable_fails_naming_it() -> None:
    with pytest.raises(ValueError, match="MY_KEY is not set"):
        read_key(io.StringIO(KEY), {}, "MY_KEY")


def test_no_key_at_all_fails() -> None:
    with pytest.raises(ValueError, match="no key given"):
        read_key(io.StringIO("\n"), {}, None)


def _ccobs(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccobs.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_the_command_prints_only_the_fingerprint_of_the_key_on_stdin() -> None:
    done = _ccobs("identities", "fingerprint", stdin=KEY + "\n")

    assert (done.returncode, done.stdout, done.stderr) == (0, KEY_FINGERPRINT + "\n", "")


def test_the_command_reads_the_variable_named_by_env() -> None:
    done = _ccobs("identities", "fingerprint", "--env", "MY_KEY", env={**os.environ, "MY_KEY": KEY})

    assert done.stdout == KEY_FINGERPRINT + "\n"


def test_the_command_takes_no_key_as_an_argument() -> None:
    done = _ccobs("identities", "fingerprint", KEY)

    assert done.returncode == 2
    assert "unrecognized arguments" in done.stderr
    assert done.stdout == ""
