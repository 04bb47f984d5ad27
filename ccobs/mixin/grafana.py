"""Small builders for Grafana's classic dashboard JSON model (schemaVersion 39).

The dashboards are plain dicts built by these functions rather than by a
Grafana SDK: the JSON is committed and diffed, so it must be deterministic,
minimal and free of anything an export adds (``__inputs``, numeric ``id``,
data source uids of one particular Grafana). Panels are built without a
position; :func:`layout` places them row by row and numbers them, so the
grid can never overlap and panel ids are unique by construction.

The iterators at the bottom are what the tests (and the real-server test
that runs every query) use to enumerate queries without knowing the layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

Json = dict[str, Any]
"""One JSON object of the dashboard model."""

Step = tuple[float | None, str]
"""A threshold step: (value the colour starts at, colour); the first value is ``None``."""

SCHEMA_VERSION = 39
"""Grafana 10.4 / 11.x; older Grafana refuses nothing here, newer migrates it on load."""

GRID_WIDTH = 24
PANEL_TYPES = ("timeseries", "stat", "bargauge", "table")

RATE_INTERVAL = "$__rate_interval"
"""The window of every rate: at least four scrape intervals, so no gaps at any zoom."""
RANGE = "$__range"
"""The window of the range stats: the dashboard's whole time range."""
RANGE_SECONDS = "$__range_s"

DATASOURCE_VARIABLE = "datasource"
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}
"""Every panel queries through the variable, so one import works on any Prometheus-API store."""
MIXED_DATASOURCE: Json = {"type": "datasource", "uid": "-- Mixed --"}
"""A panel whose targets each name their own data source."""

_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def datasource_ref(variable: str) -> Json:
    """A reference to the Prometheus-type data source chosen in ``variable``."""
    return {"type": "prometheus", "uid": f"${{{variable}}}"}


# --- template variables -------------------------------------------------------


def datasource_variable(
    name: str, label: str, description: str, default_uid: str | None = None
) -> Json:
    """A data source picker limited to Prometheus-API stores (Prometheus, VictoriaMetrics).

    Without ``default_uid`` Grafana starts on its default data source; a second
    picker names its own default, or it would start on the same store as the first.
    """
    current: Json = {}
    if default_uid is not None:
        current = {"selected": True, "text": default_uid, "value": default_uid}
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "datasource",
        "query": "prometheus",
        "current": current,
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name: str, label: str, query: str, description: str) -> Json:
    """A multi-value filter over ``label_values(...)`` that defaults to All.

    ``allValue`` is ``.*`` so that "All" also matches label values that
    appeared after the dashboard loaded; queries use ``=~"$name"``.
    """
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": query,
        "definition": query,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "skipUrlSync": False,
    }


# --- targets and panels -------------------------------------------------------


def target(
    expr: str,
    legend: str = "__auto",
    *,
    instant: bool = False,
    table: bool = False,
    datasource: Json = DATASOURCE,
) -> Json:
    """One PromQL query; its ``refId`` is given by the panel that holds it."""
    return {
        "datasource": dict(datasource),
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "range": not instant,
        "legendFormat": legend,
    }


def thresholds(*steps: Step) -> Json:
    """Absolute threshold steps; green below the first explicit value unless given."""
    if not steps or steps[0][0] is not None:
        steps = ((None, "green"), *steps)
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


@dataclass(frozen=True)
class Panel:
    """What every panel kind shares: title, description, queries, unit and size.

    The JSON envelope is built once, in :meth:`json`; a kind only says what
    differs, in :meth:`field_defaults` and :meth:`options` (and a table its
    transformations). Panels carry no position: :func:`layout` places them.
    """

    title: str
    description: str
    targets: Sequence[Json]
    _: KW_ONLY
    unit: str
    w: int
    h: int
    datasource: Json = field(default_factory=lambda: dict(DATASOURCE))
    kind: ClassVar[str]

    def __post_init__(self) -> None:
        if not 0 < self.w <= GRID_WIDTH:
            raise ValueError(f"panel {self.title!r}: width {self.w} is outside 1..{GRID_WIDTH}")

    def field_defaults(self) -> Json:
        """``fieldConfig.defaults`` besides the unit."""
        raise NotImplementedError

    def options(self) -> Json:
        raise NotImplementedError

    def json(self) -> Json:
        """The panel as Grafana's JSON model, at position (0, 0)."""
        return {
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": dict(self.datasource),
            "gridPos": {"h": self.h, "w": self.w, "x": 0, "y": 0},
            "fieldConfig": {
                "defaults": {"unit": self.unit, **self.field_defaults()},
                "overrides": [],
            },
            "options": self.options(),
            "targets": [{**t, "refId": _REF_IDS[i]} for i, t in enumerate(self.targets)],
        }


@dataclass(frozen=True, kw_only=True)
class Timeseries(Panel):
    """A time series; explicit ``steps`` are drawn as dashed lines, the alert thresholds."""

    kind: ClassVar[str] = "timeseries"
    w: int = 12
    h: int = 8
    steps: Sequence[Step] = ()
    stack: bool = False

    def field_defaults(self) -> Json:
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "axisSoftMin": 0,
            "stacking": {"group": "A", "mode": "normal" if self.stack else "none"},
            "thresholdsStyle": {"mode": "dashed" if self.steps else "off"},
        }
        return {
            "color": {"mode": "palette-classic"},
            "custom": custom,
            "thresholds": thresholds(*self.steps),
        }

    def options(self) -> Json:
        return {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }


_REDUCE_LAST: Json = {"calcs": ["lastNotNull"], "fields": "", "values": False}


@dataclass(frozen=True, kw_only=True)
class Stat(Panel):
    """A single value, coloured by ``steps`` (the thresholds users compare it with)."""

    kind: ClassVar[str] = "stat"
    w: int = 6
    h: int = 4
    steps: Sequence[Step] = ()
    mappings: Sequence[Json] = ()

    def field_defaults(self) -> Json:
        return {
            "color": {"mode": "thresholds"},
            "mappings": list(self.mappings),
            "thresholds": thresholds(*self.steps),
        }

    def options(self) -> Json:
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": dict(_REDUCE_LAST),
            "textMode": "auto",
        }


@dataclass(frozen=True, kw_only=True)
class BarGauge(Panel):
    """Horizontal bars, one per series of an instant query: a ranking over the range."""

    kind: ClassVar[str] = "bargauge"
    w: int = 12
    h: int = 8

    def field_defaults(self) -> Json:
        return {"color": {"mode": "palette-classic"}, "min": 0, "thresholds": thresholds()}

    def options(self) -> Json:
        return {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": dict(_REDUCE_LAST),
            "showUnfilled": True,
        }


@dataclass(frozen=True, kw_only=True)
class Table(Panel):
    """A table of an instant query's labels; ``hide_columns`` drops e.g. Time and Value."""

    kind: ClassVar[str] = "table"
    w: int = 24
    h: int = 6
    hide_columns: Sequence[str] = ("Time",)

    def field_defaults(self) -> Json:
        return {"custom": {"align": "auto"}, "thresholds": thresholds()}

    def options(self) -> Json:
        return {"showHeader": True, "cellHeight": "sm"}

    def json(self) -> Json:
        excluded = dict.fromkeys(self.hide_columns, True)
        transformations = [{"id": "organize", "options": {"excludeByName": excluded}}]
        return {**super().json(), "transformations": transformations}


def value_mapping(values: Mapping[str, tuple[str, str]]) -> Json:
    """Display text and colour for exact values, e.g. ``{"1": ("UP", "green")}``."""
    return {
        "type": "value",
        "options": {
            value: {"text": text, "color": color, "index": index}
            for index, (value, (text, color)) in enumerate(values.items())
        },
    }


def annotation(name: str, expr: str, *, title: str, text: str, color: str, step: str) -> Json:
    """A Prometheus query annotation: a mark wherever ``expr`` returns a series.

    Grafana places one mark per step at which the query has a value, and
    joins consecutive ones into a region; ``title``/``text`` are legend
    formats (``{{label}}``).
    """
    return {
        "name": name,
        "datasource": dict(DATASOURCE),
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": expr,
        "step": step,
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": "",
        "useValueForTime": False,
    }


def layout(rows: Sequence[Sequence[Panel]]) -> list[Json]:
    """Place panels row by row, left to right, and number them from 1.

    Each row starts below the tallest panel of the previous one, so no two
    panels overlap; a row wider than the grid is a programming error.
    """
    placed: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for panel in row:
            w, h = panel.w, panel.h
            if x + w > GRID_WIDTH:
                raise ValueError(f"row with {panel.title!r} is wider than {GRID_WIDTH}")
            placed.append(
                {"id": len(placed) + 1, **panel.json(), "gridPos": {"h": h, "w": w, "x": x, "y": y}}
            )
            x += w
        y += max((p.h for p in row), default=0)
    return placed


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    tags: Sequence[str],
    variables: Sequence[Json],
    rows: Sequence[Sequence[Panel]],
    annotations: Sequence[Json] = (),
) -> Json:
    """A whole dashboard: ``id`` null and no ``__inputs``, so it imports and provisions as is.

    A "dashboards" link with the same tags joins the set into one menu.
    """
    links = (
        [
            {
                "title": "Dashboards",
                "type": "dashboards",
                "tags": list(tags),
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
            }
        ]
        if tags
        else []
    )
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "timezone": "",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "annotations": {"list": list(annotations)},
        "links": links,
        "templating": {"list": list(variables)},
        "panels": layout(rows),
    }


# --- reading dashboards back --------------------------------------------------


def iter_panels(board: Json) -> Iterator[Json]:
    """Every panel of a dashboard, in layout order."""
    yield from board["panels"]


def iter_targets(board: Json) -> Iterator[tuple[Json, Json]]:
    """Every (panel, target) pair of a dashboard."""
    for panel in iter_panels(board):
        for item in panel.get("targets", []):
            yield panel, item


def iter_queries(board: Json) -> Iterator[tuple[str, str, str]]:
    """Every panel query as (dashboard uid, panel title, PromQL expression)."""
    for panel, item in iter_targets(board):
        yield board["uid"], panel["title"], item["expr"]


def iter_annotation_queries(board: Json) -> Iterator[tuple[str, str, str]]:
    """Every annotation query as (dashboard uid, annotation name, PromQL expression)."""
    for item in board["annotations"]["list"]:
        yield board["uid"], item["name"], item["expr"]


def iter_variable_queries(board: Json) -> Iterator[tuple[str, str, str]]:
    """Every query variable as (dashboard uid, variable name, ``label_values(...)`` query)."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield board["uid"], variable["name"], variable["query"]


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` as Grafana does; an unknown variable is a KeyError.

    Raising on unknown names turns a misspelt variable into a test failure
    rather than a query that silently matches nothing.
    """

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return _VARIABLE.sub(replace, text)
