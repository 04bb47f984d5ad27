"""The callers seen last, so that a credential is not fingerprinted on every request.

Attribution fingerprints each request's credential (SHA-256, see
:mod:`ccobs.identity`), which costs more than the rest of the attribution together,
for a handful of distinct keys a proxy sees again and again. This cache maps a
credential to its ``(team, key_alias, key_fingerprint)`` for the
:data:`DEFAULT_CAPACITY` credentials used last (least recently used out first).

It keeps no credential: its keys are the credential's ``hash()``, the 64-bit
SipHash CPython keys with a secret drawn at each start (unless ``PYTHONHASHSEED``
fixes it), computed in C from the bytes as received. A 64-bit digest cannot give a
key back, and two credentials sharing one would merge their callers just as two
sharing a fingerprint (also 64 bits) do: a chance negligible for any number of
keys a proxy holds, and one no client can aim at without the other's key. The
values are what the access log shows anyway. Memory is bounded by the capacity,
however many distinct keys callers send: a flood of new keys only pushes the
oldest out, each then costing the fingerprint again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from ccobs.identity import Caller, Identities

__all__ = ["DEFAULT_CAPACITY", "CallerCache"]

DEFAULT_CAPACITY: Final = 1024
"""Credentials kept: more than the distinct keys most proxies see, about 0.3 MB at most."""


class CallerCache:
    """Credential -> caller through :meth:`Identities.resolve_credential`, for recent credentials.

    Lookups take no lock (an ``OrderedDict``'s methods are single C calls under the
    GIL); inserting and evicting take one, so two misses cannot both evict.
    """

    __slots__ = ("_callers", "_lock", "capacity", "identities")

    def __init__(self, identities: Identities, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.identities = identities
        self.capacity = capacity
        self._callers: OrderedDict[int, Caller] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._callers)

    def resolve(self, credential: bytes | None) -> Caller:
        """``(team, key_alias, key_fingerprint)`` of ``credential``, as the identities say."""
        if credential is None:
            return self.identities.resolve_credential(None)
        key = hash(credential)
        callers = self._callers
        caller = callers.get(key)
        if caller is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per request
                callers.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still the right caller
                pass
            return caller
        caller = self.identities.resolve_credential(credential)
        with self._lock:
            callers[key] = caller
            if len(callers) > self.capacity:
                callers.popitem(last=False)
        return caller
