"""The alert runbook: one Markdown section per alert, rendered from data kept next to each alert.

Every alert's ``runbook_url`` ends in ``#<anchor>``; the anchor is the one
GitHub derives from the section heading, which is the alert name itself, so a
renamed alert renames its section and its link together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RunbookEntry:
    """What an on-call engineer needs for one alert, in the order they need it.

    ``diagnose`` holds PromQL queries (run them in Grafana Explore or the
    Prometheus UI) paired with what each one shows; ``mitigate`` the steps to
    take, most likely fix first.
    """

    meaning: str
    impact: str
    diagnose: tuple[tuple[str, str], ...]
    mitigate: tuple[str, ...]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped, dashes."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def render_runbook(
    sections: Sequence[tuple[str, str, RunbookEntry]], title: str, preamble: str
) -> str:
    """``sections`` are (alert name, severity text, entry) in alert order."""
    lines = [f"# {title}", "", preamble.strip(), ""]
    lines.append("| alert | severity |")
    lines.append("|---|---|")
    for name, severity, _ in sections:
        lines.append(f"| [{name}](#{github_anchor(name)}) | {severity} |")
    lines.append("")
    for name, severity, entry in sections:
        lines += [f"## {name}", "", f"**Severity:** {severity}", ""]
        lines += [f"**Meaning.** {entry.meaning}", ""]
        lines += [f"**Impact.** {entry.impact}", ""]
        lines += ["**Diagnose.**", ""]
        for query, explanation in entry.diagnose:
            lines += [f"- {explanation}", "", "  ```promql", f"  {query}", "  ```", ""]
        lines += ["**Mitigate.**", ""]
        lines += [f"{number}. {step}" for number, step in enumerate(entry.mitigate, start=1)]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def runbook_queries(markdown: str) -> list[str]:
    """The PromQL queries in a rendered runbook (for the lint that parses every query)."""
    return re.findall(r"```promql\n\s*(.+?)\n\s*```", markdown)
