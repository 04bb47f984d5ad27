"""The upstream limits dashboard: how much of each rate limit and subscription window is left.

Every panel reads the gauges the proxy sets from the upstream's rate-limit
headers (``ccobs.rate_limits``): per API, limit kind and key alias for the
API limits, per window and key alias for a Claude subscription. Resets are
points in time, shown as seconds from now. Several proxy instances report
the same key: the panels show the lowest headroom and the highest use.
"""

from __future__ import annotations

from ccobs.catalog import (
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REJECTED,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    SUBSCRIPTION_RESET,
    SUBSCRIPTION_STATUS,
    SUBSCRIPTION_UTILIZATION,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import board_title, board_uid, variables
from ccobs.mixin.dashboards.queries import Queries, number
from ccobs.mixin.grafana import Json, Timeseries, dashboard, target

LIMIT_LABELS = ("api", "limit", "key_alias")
WINDOW_LABELS = ("window", "key_alias")
LIMIT_LEGEND = "{{api}} {{limit}} {{key_alias}}"
WINDOW_LEGEND = "{{window}} {{key_alias}}"


def headroom_share(q: Queries) -> str:
    """remaining / limit per API, limit and key alias, the lowest over instances."""
    ratio = f"{q.selector(RATE_LIMIT_REMAINING)} / {q.selector(RATE_LIMIT_LIMIT)}"
    return f"min by ({', '.join(LIMIT_LABELS)}) ({ratio})"


def upstream_limits(config: MixinConfig) -> Json:
    """Rate-limit headroom per limit and key, and Claude subscription window use."""
    q = Queries(config)
    limits = ", ".join(LIMIT_LABELS)
    windows = ", ".join(WINDOW_LABELS)
    return dashboard(
        uid=board_uid(config, "upstream-limits"),
        title=board_title(config, "Upstream limits"),
        description="What the upstream's rate-limit headers say is left: per API limit and "
        "key, and per Claude subscription usage window.",
        tags=config.dashboard_tags,
        variables=variables(config),
        rows=[
            [
                Timeseries(
                    "Rate-limit headroom by limit",
                    "Share of each upstream rate limit left (remaining / limit) as the last "
                    "answer stated it, per API, limit kind and key alias. The headroom alert "
                    f"fires once a limit stays under the dashed line for "
                    f"{config.rate_limit_headroom_for} before its reset.",
                    [target(headroom_share(q), LIMIT_LEGEND)],
                    unit="percentunit",
                    steps=[(number(config.rate_limit_headroom_ratio), "red")],
                ),
                Timeseries(
                    "Subscription window utilization",
                    "Share of each Claude subscription usage window (5h, 7d...) used, from the "
                    "unified rate-limit headers of subscription (OAuth) traffic, per key alias. "
                    f"The alert fires above the dashed line for "
                    f"{config.subscription_utilization_for}.",
                    [
                        target(
                            f"max by ({windows}) ({q.selector(SUBSCRIPTION_UTILIZATION)})",
                            WINDOW_LEGEND,
                        )
                    ],
                    unit="percentunit",
                    steps=[(number(config.subscription_utilization_ratio), "red")],
                ),
            ],
            [
                Timeseries(
                    "Remaining by limit",
                    "What is left of each rate limit (requests or tokens) as the last answer "
                    "stated it.",
                    [
                        target(
                            f"min by ({limits}) ({q.selector(RATE_LIMIT_REMAINING)})", LIMIT_LEGEND
                        )
                    ],
                    unit="short",
                ),
                Timeseries(
                    "Seconds to rate-limit reset",
                    "Seconds until each rate limit resets, from the reset time the last answer "
                    "stated; negative once it has passed and no answer came since.",
                    [
                        target(
                            f"min by ({limits}) ({q.selector(RATE_LIMIT_RESET)}) - time()",
                            LIMIT_LEGEND,
                        )
                    ],
                    unit="s",
                ),
            ],
            [
                Timeseries(
                    "Subscription status",
                    "The Claude subscription's status per key alias (1 for the status the last "
                    "answer stated): allowed, allowed_warning (nearly used up) or rejected.",
                    [
                        target(
                            f"max by (status, key_alias) ({q.selector(SUBSCRIPTION_STATUS)}) == 1",
                            "{{status}} {{key_alias}}",
                        )
                    ],
                    unit="short",
                    w=8,
                ),
                Timeseries(
                    "Seconds to subscription window reset",
                    "Seconds until each subscription usage window resets, as last stated.",
                    [
                        target(
                            f"min by ({windows}) ({q.selector(SUBSCRIPTION_RESET)}) - time()",
                            WINDOW_LEGEND,
                        )
                    ],
                    unit="s",
                    w=8,
                ),
                Timeseries(
                    "Malformed rate-limit values",
                    "Rate-limit header values per second ignored as malformed (not a number, "
                    "negative, absurd, an unparsable time), by API and field: a vendor that "
                    "changed a format shows here.",
                    [target(q.rate(RATE_LIMIT_REJECTED, by=("api", "field")), "{{api}} {{field}}")],
                    unit="cps",
                    w=8,
                ),
            ],
        ],
    )
