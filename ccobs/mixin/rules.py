"""Compatibility module: the rules moved into a package of small modules; import from there.

``ccobs.mixin.rules`` was once one file holding everything. Its names now
live in: ``rule_types`` (``RecordingRule``, ``AlertRule``, ``SEVERITIES``),
``names`` (record names), ``recording_rules`` (the recording rules,
``TOTAL_COST_TYPE``), ``alerts`` (one module per alert area;
``alert_rules``), ``render`` (``build_rule_files``) and the test oracle
``oracle`` (``AlertModel``, ``AmbiguousTestError``, ``render_template``).
This module re-exports them so existing imports keep working.
"""

from __future__ import annotations

from ccobs.mixin.alerts import alert_rules
from ccobs.mixin.names import (
    cost_rate_record,
    error_ratio_record,
    error_ratio_windows,
    latency_p99_record,
    rate_limited_ratio_record,
    requests_rate_record,
)
from ccobs.mixin.oracle.alert_state import AlertModel
from ccobs.mixin.oracle.evaluation import AmbiguousTestError
from ccobs.mixin.oracle.templates import render_template
from ccobs.mixin.recording_rules import TOTAL_COST_TYPE, recording_rules
from ccobs.mixin.render import build_rule_files
from ccobs.mixin.rule_types import SEVERITIES, AlertRule, RecordingRule

__all__ = [
    "SEVERITIES",
    "TOTAL_COST_TYPE",
    "AlertModel",
    "AlertRule",
    "AmbiguousTestError",
    "RecordingRule",
    "alert_rules",
    "build_rule_files",
    "cost_rate_record",
    "error_ratio_record",
    "error_ratio_windows",
    "latency_p99_record",
    "rate_limited_ratio_record",
    "recording_rules",
    "render_template",
    "requests_rate_record",
]
