"""Down and Absent: is every proxy target scraped, and is there any target at all?

``Down`` fires for a target that stops answering scrapes; ``Absent`` covers
what ``Down`` cannot see, a job Prometheus no longer knows about.
"""

from __future__ import annotations

from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert
from ccobs.mixin.oracle.promtool import (
    evaluation_step,
    firing_scenario,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, absent_labels, sample_labels
from ccobs.mixin.oracle.series import Store, gauge_series
from ccobs.mixin.promql import metric
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def down(config: MixinConfig) -> AlertFamily:
    """``<prefix>Down``: a scraped target reports ``up == 0``."""
    name = f"{config.alert_prefix}Down"
    job = sample_labels(config)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        out = []
        for series in store.select("up"):
            value = store.instant(series, t)
            if value is not None and value == 0:
                out.append((series.label_dict, value))
        return out

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{metric(config, 'up')} == 0",
            for_=config.proxy_down_for,
            severity="critical",
            summary="A proxy target is down.",
            description=(
                "Prometheus has failed to scrape {{ $labels.instance }} of job {{ $labels.job }} "
                f"for {config.proxy_down_for}."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.proxy_down_for)
    step = evaluation_step([], [hold], cap=60)
    up_steps = 3
    late = round_up(up_steps * step + hold + 2 * step, step)
    steps = late // step + 1
    stopped = Store(
        step,
        (
            gauge_series(
                "up",
                {**job, "instance": SAMPLE_INSTANCES[0]},
                [(1, up_steps), (0, steps - up_steps)],
            ),
            gauge_series("up", {**job, "instance": SAMPLE_INSTANCES[1]}, [(1, steps)]),
        ),
    )
    healthy = Store(
        step,
        tuple(gauge_series("up", {**job, "instance": i}, [(1, steps)]) for i in SAMPLE_INSTANCES),
    )
    scenarios = [
        firing_scenario(
            alert, [alert], stopped, late, "one of two targets stops answering scrapes"
        ),
        quiet_scenario(alert, [alert], healthy, late, "every target answers scrapes"),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"Prometheus could not scrape a proxy target (`up == 0`) for {config.proxy_down_for}: "
            "the process is down, hung, or unreachable from Prometheus."
        ),
        impact=(
            "If the process is down, clients of that instance get connection errors. If only "
            "the scrape fails, its metrics are missing and other alerts are blind."
        ),
        diagnose=(
            (f"{metric(config, 'up')} == 0", "Which targets are down."),
            (
                f"{metric(config, 'scrape_duration_seconds')}",
                "Scrape time close to the scrape timeout means a hung or overloaded process.",
            ),
            (
                f"avg_over_time({metric(config, 'up')}[1h])",
                "Share of the last hour each target was up: below 1 and above 0 means flapping "
                "(crash loop, or scrapes timing out under load).",
            ),
        ),
        mitigate=(
            "Check the process (systemd, container or pod status and its last log lines); "
            "restart it if it crashed.",
            "If it runs but the scrape fails, check the port, `/metrics` from the Prometheus "
            "host, and firewalls.",
            "If it was removed on purpose, remove it from the scrape configuration.",
        ),
    )
    return single_rule_family(config, alert, runbook, "down_test.yaml", step, scenarios)


def absent(config: MixinConfig) -> AlertFamily:
    """``<prefix>Absent``: no ``up`` series matches the job selector at all."""
    name = f"{config.alert_prefix}Absent"
    job = sample_labels(config)
    labels = absent_labels(config)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        selected = [s for s in store.select("up") if store.instant(s, t) is not None]
        return [] if selected else [(dict(labels), 1.0)]

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"absent({metric(config, 'up')})",
            for_=config.proxy_down_for,
            severity="critical",
            summary="No proxy target is being scraped.",
            description=(
                "Prometheus has had no scrape target of "
                "{{ if $labels.job }}job {{ $labels.job }}{{ else }}the proxy"
                f"{{{{ end }}}} matching {config.job_selector} for {config.proxy_down_for}: "
                "the proxy is not deployed, or service discovery lost it."
            ),
            runbook_url=runbook_url(config, name),
        ),
        model,
    )
    hold = duration_seconds(config.proxy_down_for)
    step = evaluation_step([], [hold], cap=60)
    late = round_up(hold + 2 * step, step)
    steps = late // step + 1
    present = Store(
        step, (gauge_series("up", {**job, "instance": SAMPLE_INSTANCES[0]}, [(0, steps)]),)
    )
    scenarios = [
        firing_scenario(alert, [alert], Store(step, ()), late, "no target is scraped at all"),
        quiet_scenario(
            alert, [alert], present, late, "a target is scraped, even one that is down (up == 0)"
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"No `up` series matches `{config.job_selector}` for {config.proxy_down_for}. "
            f"`{config.alert_prefix}Down` cannot fire for targets Prometheus no longer knows "
            "about; this alert covers that case."
        ),
        impact=(
            "Either the proxy is not running anywhere, or it runs unmonitored: every other "
            "proxy alert is silent."
        ),
        diagnose=(
            (f"count by (job) ({metric(config, 'up')})", "Targets Prometheus knows per job."),
            (
                'prometheus_sd_discovered_targets{name!=""}',
                "Targets service discovery found, per scrape configuration.",
            ),
        ),
        mitigate=(
            "Check that the proxy is deployed and running.",
            "Check Prometheus' Status > Targets page and the scrape configuration: a renamed "
            "job no longer matches the rules' job selector (rebuild them with "
            "`ccobs mixin build --config`).",
        ),
    )
    return single_rule_family(config, alert, runbook, "absent_test.yaml", step, scenarios)
