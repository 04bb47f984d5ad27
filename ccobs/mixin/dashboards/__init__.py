"""The ccobs Grafana dashboards, built from a ``MixinConfig``.

Every query is assembled by :class:`Queries` so that the conventions hold by
construction rather than by review: each selector carries the job selector
and the ``job``/``instance`` variables, plus the ``model``/``service_type``
filters wherever the catalogue says the metric has those labels; counters
are only read through ``rate``/``increase`` over ``$__rate_interval`` (or
``$__range`` for the range totals); metric names come from the catalogue.
The tests then check the built JSON independently, by parsing every query.

One module per dashboard (``overview``, ``tokens_cost``, ``errors``,
``pipeline``, ``spend``, ``upstream_limits``, ``answers``), each a function of the config
returning the dashboard JSON;
``common`` holds the filters and SLO lines they share, ``queries`` the
PromQL. ``build_dashboards`` lists them with their file names.
"""

from __future__ import annotations

from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.answers import answers
from ccobs.mixin.dashboards.errors import errors
from ccobs.mixin.dashboards.overview import overview
from ccobs.mixin.dashboards.pipeline import VM_DATASOURCE_VARIABLE, pipeline
from ccobs.mixin.dashboards.queries import Queries
from ccobs.mixin.dashboards.spend import spend
from ccobs.mixin.dashboards.tokens_cost import tokens_cost
from ccobs.mixin.dashboards.upstream_limits import upstream_limits
from ccobs.mixin.grafana import Json, iter_queries, iter_variable_queries

__all__ = [
    "VM_DATASOURCE_VARIABLE",
    "Queries",
    "build_dashboards",
    "iter_queries",
    "iter_variable_queries",
]


def build_dashboards(config: MixinConfig) -> dict[str, Json]:
    """File name under ``dashboards/`` -> dashboard JSON object."""
    return {
        f"{config.dashboard_uid_prefix}-overview.json": overview(config),
        f"{config.dashboard_uid_prefix}-tokens-cost.json": tokens_cost(config),
        f"{config.dashboard_uid_prefix}-errors.json": errors(config),
        f"{config.dashboard_uid_prefix}-pipeline.json": pipeline(config),
        f"{config.dashboard_uid_prefix}-spend.json": spend(config),
        f"{config.dashboard_uid_prefix}-upstream-limits.json": upstream_limits(config),
        f"{config.dashboard_uid_prefix}-answers.json": answers(config),
    }
