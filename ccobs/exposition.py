"""Moved: kept so that ``from ccobs.exposition import ...`` keeps working.

The renderer is :mod:`ccobs.renderer` (it knows only a registry), the
``/metrics`` endpoint :mod:`ccobs.metrics_endpoint`, and the bearer-token
check :mod:`ccobs.bearer_token`.
"""

from __future__ import annotations

from ccobs.bearer_token import bearer_token_matches
from ccobs.metrics_endpoint import metrics_endpoint, render_metrics
from ccobs.renderer import OPENMETRICS, TEXT, ExpositionRenderer

__all__ = [
    "OPENMETRICS",
    "TEXT",
    "ExpositionRenderer",
    "bearer_token_matches",
    "metrics_endpoint",
    "render_metrics",
]
