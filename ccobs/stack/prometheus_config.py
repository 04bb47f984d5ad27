"""Prometheus's configuration for the stack, from one template.

docker compose and the native runner (``ccobs stack up``) scrape, alert and
remote-write the same way; only the addresses differ (service names in
compose, loopback ports natively), so both render this one template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

PROXY_JOB = "ccproxy"
PUSHGATEWAY_JOB = "pushgateway"


@dataclass(frozen=True)
class StackAddresses:
    """``host:port`` of each service Prometheus talks to."""

    proxy: str
    pushgateway: str
    alertmanager: str
    victoriametrics: str


def prometheus_config(
    addresses: StackAddresses,
    rule_files: Sequence[str],
    *,
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
) -> str:
    """The ``prometheus.yml`` text for these addresses and rule files.

    The Pushgateway is scraped with ``honor_labels: true`` so pushed series
    keep the ``job`` and ``instance`` they were pushed with.
    """
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "external_labels": {"monitor": "ccobs"},
        },
        "rule_files": list(rule_files),
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [addresses.alertmanager]}]}]
        },
        "scrape_configs": [
            {"job_name": PROXY_JOB, "static_configs": [{"targets": [addresses.proxy]}]},
            {
                "job_name": PUSHGATEWAY_JOB,
                "honor_labels": True,
                "static_configs": [{"targets": [addresses.pushgateway]}],
            },
        ],
        "remote_write": [{"url": f"http://{addresses.victoriametrics}/api/v1/write"}],
    }
    return yaml.safe_dump(config, sort_keys=False)
