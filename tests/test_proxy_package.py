"""The proxy is a product in ``ccobs.proxy``; what moved there is still found at its old path."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import ccobs
from ccobs.proxy import app, config, errors, relay, sse, upstream_client, usage

PACKAGE = Path(ccobs.__file__).parent


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ccobs.demo.proxy", (app, config, errors, relay)),
        ("ccobs.demo.upstream_client", (upstream_client,)),
        ("ccobs.demo.usage", (usage,)),
        ("ccobs.demo.sse", (sse,)),
    ],
)
def test_old_module_re_exports_the_same_objects(old: str, new: tuple[object, ...]) -> None:
    shim = importlib.import_module(old)
    assert shim.__all__
    for name in shim.__all__:
        assert any(getattr(module, name, None) is getattr(shim, name) for module in new), name


@pytest.mark.parametrize(
    "factory",
    [
        "ccobs.proxy.serve:proxy_worker_app",
        "ccobs.cli:proxy_worker_app",
        "ccobs.demo.proxy:create_app_from_env",
        "ccobs.proxy.app:create_app_from_env",
    ],
)
def test_uvicorn_factory_strings_resolve(factory: str) -> None:
    module, _, name = factory.partition(":")
    assert callable(getattr(importlib.import_module(module), name))
