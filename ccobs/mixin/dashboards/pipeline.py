"""The pipeline health dashboard: can the numbers on the other dashboards be trusted?"""

from __future__ import annotations

from ccobs.catalog import (
    ACCESS_LOG_DROPPED,
    ACCESS_LOG_WRITTEN,
    INFO,
    LABEL_OVERFLOWS,
    PUSHES,
    REJECTED_VALUES,
    REQUESTS,
)
from ccobs.mixin.config import MixinConfig
from ccobs.mixin.dashboards.common import (
    board_title,
    board_uid,
    variables,
)
from ccobs.mixin.dashboards.queries import Queries, number, or_none
from ccobs.mixin.grafana import (
    DATASOURCE,
    MIXED_DATASOURCE,
    Json,
    Stat,
    Table,
    Timeseries,
    dashboard,
    datasource_ref,
    datasource_variable,
    target,
    value_mapping,
)

VM_DATASOURCE_VARIABLE = "vm_datasource"
"""The second data source the pipeline dashboard compares with the first."""


def pipeline(config: MixinConfig) -> Json:
    """Whether the numbers on the other dashboards can be trusted: scrape, push and storage."""
    q = Queries(config)
    vm = datasource_ref(VM_DATASOURCE_VARIABLE)
    # ``:text`` shows the data source's name in the legend rather than its uid.
    both = ((DATASOURCE, "${datasource:text}"), (vm, "${vm_datasource:text}"))
    info_labels = ", ".join(("job", "instance", *INFO.labels))
    return dashboard(
        uid=board_uid(config, "pipeline"),
        title=board_title(config, "Pipeline health"),
        description="Scrape, Pushgateway push and VictoriaMetrics agreement for the proxy's "
        "metrics, and the library's own safety counters.",
        tags=config.dashboard_tags,
        variables=variables(
            config,
            datasource_variable(
                VM_DATASOURCE_VARIABLE,
                "Compare with",
                "Second store (VictoriaMetrics) whose newest samples are compared with the "
                "first data source.",
                default_uid=config.vm_datasource_uid,
            ),
        ),
        rows=[
            [
                Stat(
                    "Proxy scrape up",
                    "Prometheus' up series of the proxy's scrape targets: DOWN means the last "
                    "scrape failed. Empty when the proxy only pushes.",
                    [target(q.builtin("up"), "{{instance}}", instant=True)],
                    unit="none",
                    w=8,
                    h=6,
                    steps=[(None, "red"), (1, "green")],
                    mappings=[value_mapping({"0": ("DOWN", "red"), "1": ("UP", "green")})],
                ),
                Timeseries(
                    "Pushgateway push age",
                    "Seconds since the last successful push to Pushgateway per job and instance; "
                    "the dashed line is the stale-push alert threshold; 'none' at 0 when the "
                    "proxy is scraped or pushes to VictoriaMetrics directly.",
                    [
                        target(
                            or_none(f"time() - {q.builtin('push_time_seconds')}", "instance"),
                            "{{job}} {{instance}}",
                        )
                    ],
                    unit="s",
                    w=8,
                    h=6,
                    steps=[(number(config.push_stale_seconds), "red")],
                ),
                Timeseries(
                    "Pushes by protocol and outcome",
                    "Pushes per minute by protocol and outcome; failure includes pushes skipped "
                    'while the circuit breaker is open; "none" at 0 when the proxy does not push.',
                    [
                        target(
                            or_none(
                                f"{q.rate(PUSHES, by=('protocol', 'outcome'))} * 60", "outcome"
                            ),
                            "{{protocol}} {{outcome}}",
                        )
                    ],
                    unit="opm",
                    w=8,
                    h=6,
                ),
            ],
            [
                Timeseries(
                    "Newest sample age per data source",
                    "Seconds since the newest info sample in each store. Both lines should stay "
                    "within a scrape or push interval (plus VictoriaMetrics' 30 s search latency "
                    "offset); a line that climbs or ends alone means that store stopped "
                    "receiving data.",
                    [target(q.newest_sample_age(), name, datasource=ds) for ds, name in both],
                    unit="s",
                    datasource=MIXED_DATASOURCE,
                ),
                Timeseries(
                    "Request rate per data source",
                    "The same request rate read from both stores: the lines should overlap; a gap "
                    "means one store lost or duplicated samples.",
                    [target(q.rate(REQUESTS), name, datasource=ds) for ds, name in both],
                    unit="reqps",
                    datasource=MIXED_DATASOURCE,
                ),
            ],
            [
                Timeseries(
                    "Label overflows by label",
                    "Label values folded into 'other' per second because the label reached its "
                    "cardinality bound: raise the bound or fix the caller.",
                    [target(q.rate(LABEL_OVERFLOWS, by=("label",)), "{{label}}")],
                    unit="cps",
                ),
                Timeseries(
                    "Rejected values by metric",
                    "Recorded values refused per second because they were negative, NaN or "
                    "infinite: a bug in the caller's measurements.",
                    [target(q.rate(REJECTED_VALUES, by=("metric",)), "{{metric}}")],
                    unit="cps",
                ),
            ],
            [
                Timeseries(
                    "Access-log records written and dropped",
                    "Access-log records written to the database per second, and records lost "
                    "by reason: queue_full (writes fall behind), write_error (the database "
                    "fails: disk full, read-only, locked), closed (handed over after shutdown "
                    "began). Empty when no access-log database is configured.",
                    [
                        target(q.rate(ACCESS_LOG_WRITTEN), "written"),
                        target(q.rate(ACCESS_LOG_DROPPED, by=("reason",)), "dropped {{reason}}"),
                    ],
                    unit="cps",
                ),
            ],
            [
                Table(
                    "ccobs versions",
                    "ccobs and Python versions and platform of every running proxy instance: "
                    "confirms a rollout reached every instance.",
                    [
                        target(
                            f"max by ({info_labels}) ({q.selector(INFO)})",
                            instant=True,
                            table=True,
                        )
                    ],
                    unit="none",
                    hide_columns=("Time", "Value"),
                ),
            ],
        ],
    )
