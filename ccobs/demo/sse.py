"""Moved: server-sent events are part of the proxy, in :mod:`ccobs.proxy.sse`; re-exported here."""

from ccobs.proxy.sse import ServerSentEvent, SSEDecoder, encode_event, iter_events

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_event", "iter_events"]
