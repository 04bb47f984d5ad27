"""Who called: a credential's fingerprint, and the operator's identity file naming it.

A shared proxy's first question after "how much" is "who". The credential a
client sends (``x-api-key``, or the token of ``Authorization: Bearer``) is
the only identity every client has, and it is a secret: it must never reach
a label, a log line, the access-log database or a response. So it is reduced
at once to a fingerprint, the first 16 hex characters (64 bits) of its
SHA-256: stable, short, and useless to an attacker, with a chance of two
real keys colliding that is negligible for any number of keys a proxy sees.

The operator's identity file (YAML) maps fingerprints to an ``alias`` and a
``team``; ``ccobs identities fingerprint`` prints a key's fingerprint so the
file is filled in without a key ever being pasted into it::

    keys:
      - fingerprint: 9f2c4e1a7b3d5f60
        alias: alice
        team: platform
    budgets: [...]      # read by ccobs.budgets; accepted and left alone here

A key not in the file is ``team="unassigned"`` under the alias
``key-<first 8 hex of its fingerprint>``; a request without a credential is
``team="unassigned"``, ``key_alias="anonymous"`` and has no fingerprint.

The file is validated strictly when it is loaded, at start-up: an unknown
field, a malformed fingerprint, a duplicate alias or fingerprint or a value
of the wrong type fails with an error naming the file, the line and the
field, never later on a request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

import yaml

__all__ = [
    "ANONYMOUS_ALIAS",
    "FINGERPRINT_CHARS",
    "UNASSIGNED_TEAM",
    "Caller",
    "Identities",
    "Identity",
    "IdentityFileError",
    "credential_of",
    "fingerprint",
    "read_key",
]

FINGERPRINT_CHARS: Final = 16
"""Hex characters of the SHA-256 kept: 64 bits."""
UNASSIGNED_TEAM: Final = "unassigned"
"""The team of a caller the identity file does not name (or of one without a credential)."""
ANONYMOUS_ALIAS: Final = "anonymous"
"""The alias of a request that carried no credential at all."""
UNKNOWN_ALIAS_PREFIX: Final = "key-"
"""An unnamed key's alias: this, then the first 8 hex characters of its fingerprint."""

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""An alias or a team: a label value, so short and plain."""
_RESERVED_ALIASES = frozenset({ANONYMOUS_ALIAS, "other"})
_UNKNOWN_ALIAS = re.compile(r"key-[0-9a-f]{8}")
_TOP_LEVEL = ("keys", "budgets")
_KEY_FIELDS = ("fingerprint", "alias", "team")
_BEARER = b"bearer "


def fingerprint(credential: str | bytes) -> str:
    """The first 16 lowercase hex characters of the SHA-256 of ``credential`` as sent."""
    data = credential.encode() if isinstance(credential, str) else credential
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_CHARS]


def credential_of(api_key: bytes | None, authorization: bytes | None) -> bytes | None:
    """The credential a request carries: its ``x-api-key``, else its bearer token.

    ``x-api-key`` first, as the Anthropic API reads it first; an
    ``Authorization`` of another scheme (``Basic``) is no API credential.
    """
    if api_key:
        return api_key
    if authorization and authorization[:7].lower() == _BEARER:
        token = authorization[7:].strip()
        return token or None
    return None


@dataclass(frozen=True, slots=True)
class Identity:
    """One named key of the identity file."""

    fingerprint: str
    alias: str
    team: str


Caller = tuple[str, str, str | None]
"""``(team, key_alias, key_fingerprint)``: what a request's record gets."""

_ANONYMOUS: Caller = (UNASSIGNED_TEAM, ANONYMOUS_ALIAS, None)


class IdentityFileError(ValueError):
    """The identity file cannot be used; the message names the file, the line and the field."""


class Identities:
    """The operator's named keys, looked up by fingerprint.

    Immutable once built and holding only what the file declares, so sharing
    one across requests and threads is safe and memory stays bounded however
    many distinct keys callers send. Empty (no file) is valid: every caller
    is then ``unassigned`` under a fingerprint-based alias.
    """

    __slots__ = ("_by_fingerprint", "identities", "path")

    def __init__(self, identities: Iterable[Identity] = (), path: Path | None = None) -> None:
        self.path = path
        self.identities = tuple(identities)
        """The named keys, in file order."""
        self._by_fingerprint: dict[str, Caller] = {}
        aliases: set[str] = set()
        for identity in self.identities:
            if identity.fingerprint in self._by_fingerprint:
                raise ValueError(f"duplicate fingerprint {identity.fingerprint}")
            if identity.alias in aliases:
                raise ValueError(f"duplicate alias {identity.alias!r}")
            aliases.add(identity.alias)
            self._by_fingerprint[identity.fingerprint] = (
                identity.team,
                identity.alias,
                identity.fingerprint,
            )

    def __len__(self) -> int:
        return len(self._by_fingerprint)

    @property
    def teams(self) -> tuple[str, ...]:
        """The teams the file names, in file order, each once."""
        return tuple(dict.fromkeys(identity.team for identity in self.identities))

    @classmethod
    def load(cls, path: str | Path) -> Identities:
        """Read and validate an identity file; :class:`IdentityFileError` names what is wrong."""
        return cls(_parse(Path(path)), Path(path))

    def resolve_credential(self, credential: bytes | None) -> Caller:
        """``(team, key_alias, key_fingerprint)`` of a credential (None: no credential)."""
        if credential is None:
            return _ANONYMOUS
        key = hashlib.sha256(credential).hexdigest()[:FINGERPRINT_CHARS]
        known = self._by_fingerprint.get(key)
        if known is not None:
            return known
        return (UNASSIGNED_TEAM, UNKNOWN_ALIAS_PREFIX + key[:8], key)

    def resolve(self, headers: Mapping[str, str]) -> Caller:
        """``(team, key_alias, key_fingerprint)`` of a request with these (lowercase) headers."""
        api_key = headers.get("x-api-key")
        authorization = headers.get("authorization")
        return self.resolve_credential(
            credential_of(
                api_key.encode("latin-1") if api_key is not None else None,
                authorization.encode("latin-1") if authorization is not None else None,
            )
        )


# -- the file -------------------------------------------------------------------------------


def _parse(path: Path) -> list[Identity]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityFileError(f"{path}: cannot read the identity file: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise IdentityFileError(f"{path}{line}: not valid YAML: {exc}") from None
    if root is None:  # an empty file: no named keys
        return []
    if not isinstance(root, yaml.MappingNode):
        raise _error(path, root, "(top level)", "expected a mapping with `keys:`")
    keys_node: yaml.Node | None = None
    for name, value in _mapping_items(path, root, "(top level)"):
        if name not in _TOP_LEVEL:
            expected = ", ".join(_TOP_LEVEL)
            raise _error(path, value, name, f"unknown field; expected one of {expected}")
        if name == "keys":
            keys_node = value
        # ``budgets`` is ccobs.budgets's to validate.
    if keys_node is None or _is_null(keys_node):
        return []
    if not isinstance(keys_node, yaml.SequenceNode):
        raise _error(path, keys_node, "keys", "expected a list of {fingerprint, alias, team}")
    identities: list[Identity] = []
    fingerprints: dict[str, int] = {}
    aliases: dict[str, int] = {}
    for index, entry in enumerate(keys_node.value):
        where = f"keys[{index}]"
        if not isinstance(entry, yaml.MappingNode):
            raise _error(path, entry, where, "expected a mapping {fingerprint, alias, team}")
        values: dict[str, str] = {}
        nodes: dict[str, yaml.Node] = {}
        for name, value in _mapping_items(path, entry, where):
            if name not in _KEY_FIELDS:
                raise _error(
                    path, value, f"{where}.{name}",
                    f"unknown field; expected {', '.join(_KEY_FIELDS)}",
                )  # fmt: skip
            values[name] = _field_value(path, value, f"{where}.{name}", name)
            nodes[name] = value
        for name in _KEY_FIELDS:
            if name not in values:
                raise _error(path, entry, f"{where}.{name}", "missing")
        fp, alias = values["fingerprint"], values["alias"]
        if fp in fingerprints:
            raise _error(
                path, nodes["fingerprint"], f"{where}.fingerprint",
                f"duplicate fingerprint {fp} (first on line {fingerprints[fp]})",
            )  # fmt: skip
        if alias in aliases:
            raise _error(
                path, nodes["alias"], f"{where}.alias",
                f"duplicate alias {alias!r} (first on line {aliases[alias]})",
            )  # fmt: skip
        fingerprints[fp] = nodes["fingerprint"].start_mark.line + 1
        aliases[alias] = nodes["alias"].start_mark.line + 1
        identities.append(Identity(fp, alias, values["team"]))
    return identities


def _mapping_items(
    path: Path, node: yaml.MappingNode, where: str
) -> Iterable[tuple[str, yaml.Node]]:
    """A mapping's (key, value node) pairs; a repeated or non-string key is an error."""
    seen: set[str] = set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise _error(path, key_node, where, "field names must be plain strings")
        name = key_node.value
        if name in seen:
            raise _error(path, key_node, _join(where, name), "given twice")
        seen.add(name)
        yield name, value_node


def _field_value(path: Path, node: yaml.Node, where: str, name: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or _is_null(node):
        raise _error(path, node, where, "expected a string")
    text: str = node.value
    if name == "fingerprint":
        # All-digit hex is a YAML number: read the text as written, whatever its tag.
        if node.tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int"):
            raise _error(path, node, where, "expected a string")
        if not _FINGERPRINT.fullmatch(text):
            raise _error(
                path, node, where,
                f"malformed fingerprint {text[:40]!r}: expected 16 lowercase hex characters, "
                "as `ccobs identities fingerprint` prints",
            )  # fmt: skip
        return text
    if node.tag != "tag:yaml.org,2002:str":
        raise _error(path, node, where, f"expected a string, got {text[:40]!r}")
    if not _NAME.fullmatch(text):
        raise _error(
            path, node, where,
            f"{text[:40]!r} is not a valid {name}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )  # fmt: skip
    if name == "alias" and (text in _RESERVED_ALIASES or _UNKNOWN_ALIAS.fullmatch(text)):
        raise _error(
            path, node, where,
            f"alias {text!r} is reserved (unnamed keys are `key-<8 hex>`, no key is "
            f"`{ANONYMOUS_ALIAS}`, overflow is `other`)",
        )  # fmt: skip
    return text


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _join(where: str, name: str) -> str:
    return name if where.startswith("(") else f"{where}.{name}"


def _error(path: Path, node: yaml.Node, field: str, problem: str) -> IdentityFileError:
    return IdentityFileError(f"{path}:{node.start_mark.line + 1}: {field}: {problem}")


# -- ``ccobs identities fingerprint`` --------------------------------------------------------


def read_key(stdin: TextIO, environ: Mapping[str, str], env_var: str | None) -> str:
    """The key to fingerprint: from the variable ``env_var`` names, else stdin's first line.

    Never from an argument: argv is visible to every user of the machine
    (``ps``) and lands in shell history. Surrounding whitespace (the newline
    of ``echo``) is not part of a key.
    """
    if env_var is not None:
        value = environ.get(env_var)
        if value is None:
            raise ValueError(f"the environment variable {env_var} is not set")
        key = value.strip()
    else:
        key = stdin.readline().strip()
    if not key:
        raise ValueError("no key given: pipe it on stdin or name a variable with --env")
    return key
