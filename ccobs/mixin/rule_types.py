"""The rule types every part of the mixin shares: what a rule file holds, nothing about testing.

A ``RecordingRule`` and an ``AlertRule`` are exactly what the emitted YAML
says; an ``AlertFamily`` groups the rules sharing one alert name with their
runbook section and their already generated promtool test files. The test
oracle (``ccobs.mixin.oracle``) builds on these types; these types know
nothing of it, so reading or rendering rules never pulls in the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccobs.mixin.runbook import RunbookEntry

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class RecordingRule:
    """One recording rule; ``expr`` already carries the job selector."""

    record: str
    expr: str


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule. ``name`` is the full alert name (prefix included)."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook_url: str
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def all_labels(self) -> dict[str, str]:
        """Static labels of the rule, ``severity`` first."""
        return {"severity": self.severity, **dict(self.labels)}

    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }


@dataclass(frozen=True)
class AlertFamily:
    """The rules sharing one alert name, its runbook section and its unit tests.

    ``test_files`` are (file name under ``alerts/tests/``, promtool test
    document) pairs, rendered to YAML with the rule files.
    """

    name: str
    rules: tuple[AlertRule, ...]
    runbook: RunbookEntry
    test_files: tuple[tuple[str, dict[str, Any]], ...]
