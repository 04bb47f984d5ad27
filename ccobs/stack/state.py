"""The stack's state file: what ``up`` started, read back by ``status`` and ``down``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ccobs.stack.config import STATE_VERSION


@dataclass(frozen=True)
class ServiceRecord:
    """One started service, as the state file keeps it."""

    name: str
    pid: int
    start_ticks: int | None
    port: int
    url: str
    health_url: str
    log: str
    binary: str


@dataclass(frozen=True)
class StackState:
    """The state file: what ``up`` started, for ``status`` and ``down`` in later commands."""

    services: tuple[ServiceRecord, ...]
    notes: tuple[str, ...] = ()
    proxy_target: str = ""

    def urls(self) -> dict[str, str]:
        """Service name -> base URL, in start order."""
        return {service.name: service.url for service in self.services}

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "proxy_target": self.proxy_target,
                "services": [asdict(service) for service in self.services],
                "notes": list(self.notes),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> StackState:
        data = json.loads(text)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state file version {data.get('version')!r} is not {STATE_VERSION}")
        return cls(
            services=tuple(ServiceRecord(**item) for item in data["services"]),
            notes=tuple(data.get("notes", ())),
            proxy_target=data.get("proxy_target", ""),
        )


@dataclass(frozen=True)
class ServiceStatus:
    """One service as ``status`` finds it: ``problem`` says why it is not healthy."""

    name: str
    pid: int
    url: str
    health_url: str
    alive: bool
    healthy: bool
    problem: str | None
