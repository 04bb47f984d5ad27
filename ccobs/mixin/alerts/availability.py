"""Down and Absent: is every proxy target scraped, and is there any proxy at all?

``Down`` warns for a target that stops answering scrapes and pages when every
target of a job has (one replica of N down is capacity lost, not an outage).
``Absent`` covers what ``Down`` cannot see, a proxy Prometheus no longer
knows about, in both deployment modes: it fires only when there is neither
an ``up`` series (scraped targets) nor the proxy's info series (which
scraped and pushed metrics both carry, under the proxy's own job).
"""

from __future__ import annotations

from collections.abc import Sequence

from ccobs.catalog import INFO
from ccobs.mixin.config import MixinConfig, duration_seconds
from ccobs.mixin.names import runbook_url
from ccobs.mixin.oracle.alert_state import ModelledAlert, alert_states
from ccobs.mixin.oracle.promtool import (
    Scenario,
    evaluation_step,
    firing_scenario,
    promtool_file,
    promtool_group,
    quiet_scenario,
    round_up,
    single_rule_family,
)
from ccobs.mixin.oracle.samples import SAMPLE_INSTANCES, absent_labels, job_only, sample_labels
from ccobs.mixin.oracle.series import Store, gauge_series
from ccobs.mixin.promql import by, metric
from ccobs.mixin.rule_types import AlertFamily, AlertRule
from ccobs.mixin.runbook import RunbookEntry


def down(config: MixinConfig) -> AlertFamily:
    """``<prefix>Down``: a scraped target down (warning), every target of a job down (critical)."""
    name = f"{config.alert_prefix}Down"
    job = sample_labels(config)

    def one_model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        out = []
        for series in store.select("up"):
            value = store.instant(series, t)
            if value is not None and value == 0:
                out.append((series.label_dict, value))
        return out

    def job_model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        values = [v for s in store.select("up") if (v := store.instant(s, t)) is not None]
        return [(job_only(config, job), 0.0)] if values and sum(values) == 0 else []

    up = metric(config, "up")
    instance = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"{up} == 0",
            for_=config.proxy_down_for,
            severity="warning",
            summary="A proxy target is down.",
            description=(
                "Prometheus has failed to scrape {{ $labels.instance }} of job {{ $labels.job }} "
                f"for {config.proxy_down_for}."
            ),
            runbook_url=runbook_url(config, name),
            labels=(("scope", "instance"),),
        ),
        one_model,
    )
    whole = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"sum by ({by(config)}) ({up}) == 0",
            for_=config.proxy_down_for,
            severity="critical",
            summary="Every target of a proxy job is down.",
            description=(
                "Prometheus has failed to scrape every target of job {{ $labels.job }} "
                f"for {config.proxy_down_for}."
            ),
            runbook_url=runbook_url(config, name),
            labels=(("scope", "job"),),
        ),
        job_model,
    )
    alerts = (instance, whole)
    hold = duration_seconds(config.proxy_down_for)
    step = evaluation_step([], [hold], cap=60)
    up_steps = 3
    late = round_up(up_steps * step + hold + 2 * step, step)
    steps = late // step + 1

    def targets(*stopping: bool) -> Store:
        runs: list[Sequence[tuple[float, int]]] = [
            [(1, up_steps), (0, steps - up_steps)] if stops else [(1, steps)] for stops in stopping
        ]
        return Store(
            step,
            tuple(
                gauge_series("up", {**job, "instance": i}, r)
                for i, r in zip(SAMPLE_INSTANCES, runs, strict=True)
            ),
        )

    scenarios: list[Scenario] = [
        firing_scenario(
            instance, alerts, targets(True, False), late, "one of two targets stops answering"
        ),
        firing_scenario(whole, alerts, targets(True, True), late, "both targets stop answering"),
        quiet_scenario(instance, alerts, targets(False, False), late, "every target answers"),
    ]
    if any(s for t in alert_states(alerts, scenarios[2].store, late).values() for s in t):
        raise ValueError(f"{name}: the healthy scenario is not quiet")
    runbook = RunbookEntry(
        meaning=(
            f"Prometheus could not scrape a proxy target (`up == 0`) for {config.proxy_down_for}: "
            "the process is down, hung, or unreachable from Prometheus. One target of a job "
            "is a warning (`scope=instance`: the other replicas still serve); every target of "
            "the job is critical (`scope=job`: nothing serves). Proxies that push instead of "
            "being scraped have no `up` series of their own: for them "
            f"`{config.alert_prefix}PushStale` is the down signal."
        ),
        impact=(
            "If the process is down, clients of that instance get connection errors (all "
            "clients when the whole job is down). If only the scrape fails, its metrics are "
            "missing and other alerts are blind."
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
    file = promtool_file(config, step, [promtool_group(name, alerts, s) for s in scenarios])
    return AlertFamily(name, tuple(a.rule for a in alerts), runbook, (("down_test.yaml", file),))


def absent(config: MixinConfig) -> AlertFamily:
    """``<prefix>Absent``: neither a scraped target nor pushed metrics of the proxy at all."""
    name = f"{config.alert_prefix}Absent"
    job = sample_labels(config)
    labels = absent_labels(config)
    info = config.metric(INFO)

    def model(store: Store, t: int) -> list[tuple[dict[str, str], float]]:
        selected = [
            s for s in (*store.select("up"), *store.select(info)) if store.instant(s, t) is not None
        ]
        return [] if selected else [(dict(labels), 1.0)]

    alert = ModelledAlert(
        AlertRule(
            name=name,
            expr=f"absent({metric(config, 'up')})\nand\nabsent({metric(config, info)})",
            for_=config.proxy_down_for,
            severity="critical",
            summary="No proxy is being scraped or pushing metrics.",
            description=(
                "Prometheus has had neither a scrape target nor pushed metrics of "
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
    scraped_down = Store(
        step, (gauge_series("up", {**job, "instance": SAMPLE_INSTANCES[0]}, [(0, steps)]),)
    )
    # Push-only: the Pushgateway serves the proxy's series under the proxy's
    # job (honor_labels); the only `up` is the Pushgateway's own job's.
    info_labels = {
        **job,
        "instance": "proxy-7d9f-abcde",
        "version": "1.0.0",
        "python_version": "3.12.3",
        "platform": "linux",
    }
    pushed = Store(step, (gauge_series(info, info_labels, [(1, steps)]),))
    scenarios = [
        firing_scenario(alert, [alert], Store(step, ()), late, "no target and no pushed metrics"),
        quiet_scenario(
            alert,
            [alert],
            scraped_down,
            late,
            "a target is scraped, even one that is down (up == 0)",
        ),
        quiet_scenario(
            alert,
            [alert],
            pushed,
            late,
            "push-only: the proxy's pushed info series is there, no `up` of its job",
        ),
    ]
    runbook = RunbookEntry(
        meaning=(
            f"Neither an `up` series (a scraped target) nor the proxy's `{info}` series "
            f"(which scraped and pushed metrics both carry) matches `{config.job_selector}` "
            f"for {config.proxy_down_for}. `{config.alert_prefix}Down` cannot fire for targets "
            "Prometheus no longer knows about; this alert covers that case, in scraped and "
            "push-only deployments alike."
        ),
        impact=(
            "Either the proxy is not running anywhere, or it runs unmonitored: every other "
            "proxy alert is silent."
        ),
        diagnose=(
            (
                f"count by ({by(config)}) ({metric(config, 'up')})",
                "Targets Prometheus knows per job.",
            ),
            (
                f"count by ({by(config)}, instance) ({metric(config, info)})",
                "Proxy processes whose metrics arrive, scraped or pushed.",
            ),
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
