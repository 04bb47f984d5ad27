"""Budgets in USD per team or per key over a rolling period, from the identity file.

The identity file (``--identities FILE``) may carry a ``budgets:`` section beside
its ``keys:``::

    budgets:
      - team: platform      # a team budget ...
        period: 30d         # 1d | 7d | 30d (rolling)
        usd: 500
      - key: alice          # ... or a key budget, by alias
        period: 1d
        usd: 20

The proxy does not add up spend: restarts, workers and replicas would each keep
their own sum. It exposes each budget as a gauge, ``budget_usd{scope, team,
key_alias, period}``, set at start from the file, and Prometheus derives spend
from the attribution counters (``attributed_cost_usd_total``) with the mixin's
recording rules. A budget that has spent nothing still has its series, so its
remaining budget reads the budget itself, never a missing series or ``+Inf``.

A bad section fails at start with the file, the line and the field: a zero or
negative ``usd``, an unknown period, neither or both of ``team`` and ``key``, an
unknown field, the same budget twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import yaml

__all__ = [
    "MAX_BUDGETS",
    "PERIODS",
    "Budget",
    "BudgetFileError",
    "expose_budgets",
    "load_budgets",
    "parse_budgets",
]

PERIODS: dict[str, int] = {"1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
"""The rolling periods a budget may span, in seconds: the mixin records spend over each."""
MAX_BUDGETS = 1000
"""Budgets one file may declare: each is a series, and the file is a label source."""
SECTION = "budgets"
_FIELDS = ("team", "key", "period", "usd")

Scope = Literal["team", "key"]


class BudgetFileError(ValueError):
    """A ``budgets:`` section that cannot be used; the message names file, line and field."""


@dataclass(frozen=True)
class Budget:
    """One budget: ``usd`` over a rolling ``period`` for a team or a key alias."""

    scope: Scope
    name: str
    """The team, or the key's alias."""
    period: str
    usd: float
    line: int = field(default=0, compare=False)
    """Its line in the identity file (0 when not from a file), for errors found later."""

    @property
    def team(self) -> str:
        """The ``team`` label of its gauge (empty, so absent, for a key budget)."""
        return self.name if self.scope == "team" else ""

    @property
    def key_alias(self) -> str:
        """The ``key_alias`` label of its gauge (empty, so absent, for a team budget)."""
        return self.name if self.scope == "key" else ""


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _fail(source: str, node: yaml.Node, field: str, problem: str) -> BudgetFileError:
    return BudgetFileError(f"{source}:{_line(node)}: {field}: {problem}")


def _text(source: str, node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise _fail(source, node, field, "must be a string")
    if not node.value.strip():
        raise _fail(source, node, field, "must not be empty")
    return str(node.value)


def _usd(source: str, node: yaml.Node, field: str) -> float:
    numeric = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    if not isinstance(node, yaml.ScalarNode) or node.tag not in numeric:
        raise _fail(source, node, field, "must be a number of US dollars")
    value = yaml.safe_load(node.value)
    usd = float(value)
    if not math.isfinite(usd) or usd <= 0:
        raise _fail(source, node, field, f"must be a positive number of US dollars, not {value}")
    return usd


def _budget(source: str, node: yaml.Node, index: int) -> Budget:
    where = f"{SECTION}[{index}]"
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, where, "must be a mapping with team or key, period and usd")
    fields: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
        if key not in _FIELDS:
            raise _fail(
                source, key_node, f"{where}.{key}", f"unknown field; allowed: {', '.join(_FIELDS)}"
            )
        if key in fields:
            raise _fail(source, key_node, f"{where}.{key}", "given twice")
        fields[key] = value_node
    if ("team" in fields) == ("key" in fields):
        raise _fail(source, node, where, "needs exactly one of team and key")
    scope: Scope = "team" if "team" in fields else "key"
    name = _text(source, fields[scope], f"{where}.{scope}")
    for required in ("period", "usd"):
        if required not in fields:
            raise _fail(source, node, f"{where}.{required}", "missing")
    period = _text(source, fields["period"], f"{where}.period")
    if period not in PERIODS:
        raise _fail(
            source,
            fields["period"],
            f"{where}.period",
            f"unknown period {period!r}; allowed: {', '.join(PERIODS)}",
        )
    return Budget(scope, name, period, _usd(source, fields["usd"], f"{where}.usd"), _line(node))


def parse_budgets(text: str, source: str = "<identities>") -> tuple[Budget, ...]:
    """The budgets of an identity file's text; none when it has no ``budgets:`` section.

    Other top-level keys (``keys:``) belong to the identity loader and are left
    alone. Raises :class:`BudgetFileError` naming ``source``, the line and the field.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise BudgetFileError(f"{source}: not valid YAML: {exc}") from exc
    if root is None:
        return ()
    if not isinstance(root, yaml.MappingNode):
        raise _fail(source, root, "(top level)", "must be a mapping")
    section = next(
        (value for key, value in root.value if getattr(key, "value", None) == SECTION), None
    )
    if section is None or (isinstance(section, yaml.ScalarNode) and section.value in ("", "~")):
        return ()
    if not isinstance(section, yaml.SequenceNode):
        raise _fail(source, section, SECTION, "must be a list of budgets")
    if len(section.value) > MAX_BUDGETS:
        raise _fail(source, section, SECTION, f"more than {MAX_BUDGETS} budgets")
    budgets: list[Budget] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, node in enumerate(section.value):
        budget = _budget(source, node, index)
        identity = (budget.scope, budget.name, budget.period)
        if identity in seen:
            raise _fail(
                source,
                node,
                f"{SECTION}[{index}]",
                f"duplicate of the {budget.period} budget of {budget.scope} {budget.name!r} "
                f"on line {seen[identity]}",
            )
        seen[identity] = _line(node)
        budgets.append(budget)
    return tuple(budgets)


def load_budgets(path: Path) -> tuple[Budget, ...]:
    """The budgets of the identity file at ``path`` (see :func:`parse_budgets`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BudgetFileError(f"{path}: cannot read the identity file: {exc}") from exc
    return parse_budgets(text, str(path))


class BudgetGauge(Protocol):
    """``PrometheusMetrics.set_budget``'s owner."""

    def set_budget(self, scope: str, team: str, key_alias: str, period: str, usd: float) -> None:
        """Set one budget's gauge."""


def expose_budgets(metrics: BudgetGauge, budgets: tuple[Budget, ...]) -> None:
    """Set the ``budget_usd`` gauge of every budget: at start, so each has its series.

    Each process sets the same values; under multiprocess mode the gauge takes
    the workers' maximum, so the exposition shows each budget once.
    """
    for budget in budgets:
        metrics.set_budget(budget.scope, budget.team, budget.key_alias, budget.period, budget.usd)
