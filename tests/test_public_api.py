"""Conformance with the API reference (``reference/ccproxy-observability-api.txt``).

Code written against the reference must run unchanged on ccobs: every name it
lists is importable from ``ccobs`` and from the module the reference names,
and every callable takes the reference's parameters in the reference's order
with the reference's defaults. ccobs may add parameters only after those and
only optional ones (a default, ``*args`` or ``**kwargs``), which no call
written against the reference can bind by accident.

The expectations are data, one row per API item, so a failure names the item.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import pytest

import ccobs

REQUIRED: Any = inspect.Parameter.empty
"""The ``default`` of a parameter the caller must pass."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = REQUIRED
    kind: inspect._ParameterKind = inspect.Parameter.POSITIONAL_OR_KEYWORD


def kwargs(name: str) -> Param:
    return Param(name, kind=inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Factory:
    """A dataclass field's ``default_factory``: the reference writes it ``metadata=dict()``."""

    make: Callable[[], Any]


@dataclass(frozen=True)
class ApiItem:
    """One callable of the reference: where it lives and its parameters, ``self`` excluded."""

    module: str
    qualname: str
    params: tuple[Param, ...] = ()
    returns: type | None = None
    """The return type the reference documents."""

    @property
    def id(self) -> str:
        return self.qualname


PM = "PrometheusMetrics"
PG = "PushgatewayClient"

REFERENCE: tuple[ApiItem, ...] = (
    # ccobs.metrics
    ApiItem(
        "ccobs.metrics",
        PM,
        (Param("namespace", "ccproxy"), Param("registry", None), Param("pushgateway_client", None)),
    ),
    ApiItem(
        "ccobs.metrics",
        f"{PM}.record_request",
        (
            Param("method"),
            Param("endpoint"),
            Param("model", None),
            Param("status", "unknown"),
            Param("service_type", None),
        ),
    ),
    ApiItem(
        "ccobs.metrics",
        f"{PM}.record_response_time",
        (
            Param("duration_seconds"),
            Param("model", None),
            Param("endpoint", "unknown"),
            Param("service_type", None),
        ),
    ),
    ApiItem(
        "ccobs.metrics",
        f"{PM}.record_tokens",
        (
            Param("token_count"),
            Param("token_type"),
            Param("model", None),
            Param("service_type", None),
        ),
    ),
    ApiItem(
        "ccobs.metrics",
        f"{PM}.record_cost",
        (
            Param("cost_usd"),
            Param("model", None),
            Param("cost_type", "total"),
            Param("service_type", None),
        ),
    ),
    ApiItem(
        "ccobs.metrics",
        f"{PM}.record_error",
        (
            Param("error_type"),
            Param("endpoint", "unknown"),
            Param("model", None),
            Param("service_type", None),
        ),
    ),
    ApiItem("ccobs.metrics", f"{PM}.set_active_requests", (Param("count"),)),
    ApiItem("ccobs.metrics", f"{PM}.inc_active_requests"),
    ApiItem("ccobs.metrics", f"{PM}.dec_active_requests"),
    ApiItem("ccobs.metrics", f"{PM}.update_system_info"),
    ApiItem("ccobs.metrics", f"{PM}.is_enabled", returns=bool),
    ApiItem("ccobs.metrics", f"{PM}.push_to_gateway", (Param("method", "push"),), returns=bool),
    ApiItem("ccobs.metrics", f"{PM}.push_add_to_gateway", returns=bool),
    ApiItem("ccobs.metrics", f"{PM}.delete_from_gateway", returns=bool),
    ApiItem("ccobs.metrics", f"{PM}.is_pushgateway_enabled", returns=bool),
    ApiItem(
        "ccobs.metrics",
        "get_metrics",
        (
            Param("namespace", "ccproxy"),
            Param("registry", None),
            Param("pushgateway_client", None),
            Param("settings", None),
        ),
        returns=ccobs.PrometheusMetrics,
    ),
    ApiItem("ccobs.metrics", "reset_metrics"),
    # ccobs.pushgateway
    ApiItem("ccobs.pushgateway", PG, (Param("settings"),)),
    ApiItem(
        "ccobs.pushgateway",
        f"{PG}.push_metrics",
        (Param("registry"), Param("method", "push")),
        returns=bool,
    ),
    ApiItem("ccobs.pushgateway", f"{PG}.push_add_metrics", (Param("registry"),), returns=bool),
    ApiItem("ccobs.pushgateway", f"{PG}.delete_metrics", returns=bool),
    ApiItem("ccobs.pushgateway", "get_pushgateway_client"),
    ApiItem("ccobs.pushgateway", "reset_pushgateway_client"),
    # ccobs.context
    ApiItem(
        "ccobs.context",
        "RequestContext",
        (
            Param("request_id"),
            Param("start_time"),
            Param("logger"),
            Param("metadata", Factory(dict)),
            Param("storage", None),
        ),
    ),
    ApiItem("ccobs.context", "get_context_tracker"),
    ApiItem(
        "ccobs.context",
        "request_context",
        (
            Param("request_id", None),
            Param("storage", None),
            Param("metrics", None),
            kwargs("initial_context"),
        ),
    ),
    ApiItem(
        "ccobs.context",
        "timed_operation",
        (Param("operation_name"), Param("request_id", None), kwargs("context")),
    ),
    ApiItem(
        "ccobs.context",
        "tracked_request_context",
        (Param("request_id", None), kwargs("initial_context")),
    ),
)

PUBLIC_NAMES: tuple[tuple[str, str], ...] = (
    ("ccobs.metrics", "PrometheusMetrics"),
    ("ccobs.metrics", "get_metrics"),
    ("ccobs.metrics", "reset_metrics"),
    ("ccobs.pushgateway", "PushgatewayClient"),
    ("ccobs.pushgateway", "get_pushgateway_client"),
    ("ccobs.pushgateway", "reset_pushgateway_client"),
    ("ccobs.context", "RequestContext"),
    ("ccobs.context", "request_context"),
    ("ccobs.context", "timed_operation"),
    ("ccobs.context", "tracked_request_context"),
    ("ccobs.context", "get_context_tracker"),
    ("ccobs.context", "ContextTracker"),
)

ASYNC_CONTEXT_MANAGERS: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("request_context", lambda: ccobs.request_context()),
    ("timed_operation", lambda: ccobs.timed_operation("operation")),
    ("tracked_request_context", lambda: ccobs.tracked_request_context()),
)
"""The reference marks these ``async``: used as ``async with ...``."""


def resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def parameters(item: ApiItem) -> list[inspect.Parameter]:
    """The item's parameters; a dataclass field's default_factory as :class:`Factory`."""
    obj = resolve(item.module, item.qualname)
    params = list(inspect.signature(obj).parameters.values())
    if not inspect.isclass(obj) and "." in item.qualname:
        params = params[1:]  # self
    if dataclasses.is_dataclass(obj):
        factories = {
            f.name: Factory(f.default_factory)
            for f in dataclasses.fields(obj)
            if f.default_factory is not dataclasses.MISSING
        }
        params = [
            p.replace(default=factories[p.name]) if p.name in factories else p for p in params
        ]
    return params


@pytest.mark.parametrize(("module", "name"), PUBLIC_NAMES, ids=[n for _, n in PUBLIC_NAMES])
def test_reference_name_is_importable_from_its_module_and_from_ccobs(
    module: str, name: str
) -> None:
    from_module = getattr(importlib.import_module(module), name)
    assert getattr(ccobs, name) is from_module
    assert name in ccobs.__all__


@pytest.mark.parametrize("item", REFERENCE, ids=[item.id for item in REFERENCE])
def test_reference_parameters_come_first_in_order_with_their_defaults(item: ApiItem) -> None:
    actual = parameters(item)
    expected = [(p.name, p.kind, p.default) for p in item.params]
    assert [(p.name, p.kind, p.default) for p in actual[: len(expected)]] == expected


@pytest.mark.parametrize("item", REFERENCE, ids=[item.id for item in REFERENCE])
def test_parameters_beyond_the_reference_are_optional(item: ApiItem) -> None:
    extra = parameters(item)[len(item.params) :]
    required = [
        p.name
        for p in extra
        if p.default is REQUIRED and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert required == []


@pytest.mark.parametrize(
    "item",
    [item for item in REFERENCE if item.returns is not None],
    ids=[item.id for item in REFERENCE if item.returns is not None],
)
def test_return_annotation_is_the_documented_type(item: ApiItem) -> None:
    hints = typing.get_type_hints(resolve(item.module, item.qualname))
    assert hints.get("return") is item.returns


def test_request_context_metadata_defaults_to_a_fresh_dict() -> None:
    first = ccobs.RequestContext("a", 0.0, None)
    second = ccobs.RequestContext("b", 0.0, None)
    assert first.metadata == {}
    assert first.metadata is not second.metadata
    assert first.storage is None


@pytest.mark.parametrize(
    "factory", [f for _, f in ASYNC_CONTEXT_MANAGERS], ids=[n for n, _ in ASYNC_CONTEXT_MANAGERS]
)
def test_context_manager_is_async(factory: Callable[[], Any]) -> None:
    assert isinstance(factory(), AbstractAsyncContextManager)
