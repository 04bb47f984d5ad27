"""The identity file as a whole: its callers and its budgets, checked against each other.

``ccobs/identity.py`` reads the ``keys:`` section and ``ccobs/budgets.py`` the
``budgets:`` section, each on its own. A key budget names its key by alias, so a
budget for an alias that ``keys:`` does not list would watch a series that never
exists: its remaining budget would read the whole budget forever and its alert
never fire. That is a typo the operator must hear about at start, not discover
the day the money is gone, so loading the file checks it here.
"""

from __future__ import annotations

from pathlib import Path

from ccobs.budgets import Budget, BudgetFileError, load_budgets
from ccobs.identity import Identities

__all__ = ["check_budget_keys", "load_identity_file"]


def check_budget_keys(identities: Identities, budgets: tuple[Budget, ...], source: str) -> None:
    """Raise :class:`BudgetFileError` (file, line, field) for a key budget of an unlisted alias."""
    aliases = {identity.alias for identity in identities.identities}
    for index, budget in enumerate(budgets):
        if budget.scope == "key" and budget.name not in aliases:
            known = ", ".join(sorted(aliases)[:10]) or "none"
            raise BudgetFileError(
                f"{source}:{budget.line}: budgets[{index}].key: no key with alias "
                f"{budget.name!r} under keys: (aliases: {known})"
            )


def load_identity_file(path: str | Path) -> tuple[Identities, tuple[Budget, ...]]:
    """The file's identities and budgets; a bad file fails naming file, line and field."""
    identities = Identities.load(path)
    budgets = load_budgets(Path(path))
    check_budget_keys(identities, budgets, str(path))
    return identities, budgets
