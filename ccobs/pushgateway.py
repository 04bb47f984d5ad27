"""Pushing metrics to a Prometheus Pushgateway or to VictoriaMetrics.

Pushing exists for processes that Prometheus cannot scrape (short jobs, hosts
behind NAT). It must never hurt the proxy: every call has a timeout, returns a
bool instead of raising, and a circuit breaker stops a dead target from costing
a timeout on every push.
"""

from __future__ import annotations

import base64
import threading
from urllib.parse import quote_plus, urlparse

import httpx
import structlog

from ccobs.circuit_breaker import BreakerState, CircuitBreaker
from ccobs.prometheus_internals import PROMETHEUS_AVAILABLE
from ccobs.redaction import redact_text
from ccobs.renderer import TEXT_CONTENT_TYPE, ExpositionRenderer
from ccobs.settings import ObservabilitySettings

if PROMETHEUS_AVAILABLE:
    from prometheus_client import CollectorRegistry

logger = structlog.get_logger("ccobs.pushgateway")

PUSH_METHODS = ("push", "pushadd", "delete")
VM_IMPORT_PATH = "/api/v1/import/prometheus"
VM_DELETE_PATH = "/api/v1/admin/tsdb/delete_series"
_VM_SUFFIXES = ("/api/v1/write", VM_IMPORT_PATH)
_HTTP_METHODS = {"push": "PUT", "pushadd": "POST", "delete": "DELETE"}


def pushgateway_url(gateway: str, job: str, grouping_key: dict[str, str]) -> str:
    """The Pushgateway URL of ``job`` and ``grouping_key``, encoded as prometheus_client does.

    A value with a ``/`` or a space (or an empty one) goes base64-encoded under
    ``name@base64``; others are URL-quoted.
    """
    if urlparse(gateway).scheme not in ("http", "https"):
        gateway = "http://" + gateway
    path = "".join(
        _grouping_segment(name, value)
        for name, value in [("job", job), *sorted(grouping_key.items())]
    )
    return f"{gateway.rstrip('/')}/metrics{path}"


def _grouping_segment(name: str, value: str) -> str:
    if value == "":
        return f"/{name}@base64/="
    if "/" in value or " " in value:
        return f"/{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode()}"
    return f"/{name}/{quote_plus(value)}"


def victoriametrics_base_url(url: str) -> str:
    """The server root of a VictoriaMetrics URL given with or without an API path."""
    for suffix in _VM_SUFFIXES:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


class PushgatewayClient:
    """Pushes a registry under the grouping key ``job`` + ``instance``.

    ``instance`` (the host name by default) keeps replicas from overwriting
    each other's series. The protocol is the explicit
    ``settings.pushgateway_protocol``: ``pushgateway`` PUTs (push), POSTs
    (pushadd) or DELETEs the text exposition at the job's grouping-key URL,
    as prometheus_client's push functions do; ``victoriametrics`` posts it to
    ``/api/v1/import/prometheus`` with ``job`` and ``instance`` as extra labels
    (there, ``push`` and ``pushadd`` both add samples, and ``delete`` deletes
    the series of this job and instance).
    """

    def __init__(
        self, settings: ObservabilitySettings, *, breaker: CircuitBreaker | None = None
    ) -> None:
        self.settings = settings
        self.breaker = breaker or CircuitBreaker(
            settings.pushgateway_failure_threshold, settings.pushgateway_reset_seconds
        )
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        # Kept between pushes: it formats each series' labels once, not on every push.
        self._renderer = ExpositionRenderer()
        if self.is_enabled():
            # Building an httpx.Client loads the CA bundle (slow, slower on a busy host):
            # pay it here, not inside the first push, which must end within its timeout.
            self._client()

    def is_enabled(self) -> bool:
        return PROMETHEUS_AVAILABLE and self.settings.pushgateway_url is not None

    @property
    def grouping_key(self) -> dict[str, str]:
        return {"instance": self.settings.pushgateway_instance}

    def push_metrics(self, registry: CollectorRegistry | None, method: str = "push") -> bool:
        """Send ``registry`` with ``method`` push (replace), pushadd (add) or delete.

        Returns True on success and False on any failure, which is logged;
        an unknown ``method`` is a programming error and raises ValueError.
        """
        if method not in PUSH_METHODS:
            raise ValueError(f"unknown push method {method!r}; expected one of {PUSH_METHODS}")
        if registry is None and method != "delete":
            raise ValueError(f"push method {method!r} needs a registry")
        if not self.is_enabled():
            return False
        if not self.breaker.allow():
            logger.debug("push_skipped_circuit_open", method=method)
            return False
        try:
            if self.settings.pushgateway_protocol == "victoriametrics":
                self._victoriametrics(registry, method)
            else:
                self._pushgateway(registry, method)
        except Exception as exc:  # any failure is reported as False, never raised
            self._on_failure(method, exc)
            return False
        if self.breaker.record_success() is not BreakerState.CLOSED:
            logger.info("push_circuit_closed", target=self._target())
        return True

    def push_add_metrics(self, registry: CollectorRegistry) -> bool:
        """Add ``registry``'s metrics to this job and instance (pushadd)."""
        return self.push_metrics(registry, method="pushadd")

    def delete_metrics(self) -> bool:
        """Delete this job and instance's metrics from the target."""
        return self.push_metrics(None, method="delete")

    def close(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _target(self) -> str:
        return redact_text(self.settings.pushgateway_url or "")

    def _on_failure(self, method: str, exc: Exception) -> None:
        state = self.breaker.record_failure()
        log = logger.warning if state is BreakerState.OPEN else logger.info
        log(
            "push_failed",
            method=method,
            target=self._target(),
            protocol=self.settings.pushgateway_protocol,
            error=redact_text(f"{type(exc).__name__}: {exc}")[:300],
            circuit=state.value,
        )

    def _pushgateway(self, registry: CollectorRegistry | None, method: str) -> None:
        settings = self.settings
        assert settings.pushgateway_url is not None
        url = pushgateway_url(settings.pushgateway_url, settings.pushgateway_job, self.grouping_key)
        if method == "delete":
            response = self._client().delete(url)
        else:
            assert registry is not None
            response = self._client().request(
                _HTTP_METHODS[method],
                url,
                content=self._renderer.render(registry),
                headers={"Content-Type": TEXT_CONTENT_TYPE},
            )
        response.raise_for_status()

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.settings.pushgateway_timeout_seconds)
            return self._http

    def _victoriametrics(self, registry: CollectorRegistry | None, method: str) -> None:
        settings = self.settings
        assert settings.pushgateway_url is not None
        base = victoriametrics_base_url(settings.pushgateway_url)
        job, instance = settings.pushgateway_job, settings.pushgateway_instance
        if method == "delete":
            selector = f'{{job="{_escape(job)}",instance="{_escape(instance)}"}}'
            response = self._client().post(base + VM_DELETE_PATH, params={"match[]": selector})
        else:
            assert registry is not None
            response = self._client().post(
                base + VM_IMPORT_PATH,
                params=[("extra_label", f"job={job}"), ("extra_label", f"instance={instance}")],
                content=self._renderer.render(registry),
                headers={"Content-Type": TEXT_CONTENT_TYPE},
            )
        response.raise_for_status()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_client: PushgatewayClient | None = None
_client_lock = threading.Lock()


def get_pushgateway_client(settings: ObservabilitySettings | None = None) -> PushgatewayClient:
    """The process-wide client, created from ``settings`` (or the environment) on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = PushgatewayClient(settings or ObservabilitySettings.load())
        return _client


def reset_pushgateway_client() -> None:
    """Forget the process-wide client (closing its connections), mainly for tests."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None
