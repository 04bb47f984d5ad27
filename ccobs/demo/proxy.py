"""Moved: the proxy is a product now, in :mod:`ccobs.proxy`.

A re-export, so old imports (and the uvicorn factory string
``ccobs.demo.proxy:create_app_from_env``) keep working. The configuration is in
:mod:`ccobs.proxy.config`, the app in :mod:`ccobs.proxy.app`, the relay in
:mod:`ccobs.proxy.relay`, error bodies in :mod:`ccobs.proxy.errors`.
"""

from ccobs.proxy.app import create_app_from_env, create_proxy_app
from ccobs.proxy.config import (
    ANTHROPIC_PATH,
    DEFAULT_UPSTREAM,
    OPENAI_PATH,
    PRICES_ENV,
    UPSTREAM_ENV,
    ProxyConfig,
)
from ccobs.proxy.errors import error_body, error_type_for_status
from ccobs.proxy.relay import CLIENT_CLOSED_REQUEST, LLMProxy

__all__ = [
    "ANTHROPIC_PATH",
    "CLIENT_CLOSED_REQUEST",
    "DEFAULT_UPSTREAM",
    "OPENAI_PATH",
    "PRICES_ENV",
    "UPSTREAM_ENV",
    "LLMProxy",
    "ProxyConfig",
    "create_app_from_env",
    "create_proxy_app",
    "error_body",
    "error_type_for_status",
]
