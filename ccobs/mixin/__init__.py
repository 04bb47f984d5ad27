"""Dashboards, alert and recording rules, runbook and rule tests, built from one configuration."""
