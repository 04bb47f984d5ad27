"""The ccobs proxy, meant for real traffic: Anthropic and OpenAI APIs relayed and measured.

One module per concept:

- :mod:`ccobs.proxy.config`: :class:`~ccobs.proxy.config.ProxyConfig`, routes, environment names;
- :mod:`ccobs.proxy.app`: ``create_proxy_app`` and ``create_app_from_env``;
- :mod:`ccobs.proxy.relay`: ``LLMProxy``, the relay and its accounting;
- :mod:`ccobs.proxy.errors`: error bodies and stream error events in each API's shape;
- :mod:`ccobs.proxy.upstream_client`: the pooled HTTP/1.1 client for the upstream;
- :mod:`ccobs.proxy.usage` and :mod:`ccobs.proxy.sse`: usage and server-sent-event parsing;
- :mod:`ccobs.proxy.serve`: serving with uvicorn, workers and graceful shutdown.

Nothing is imported here, so the command line can read ``serve``'s defaults
without loading FastAPI and the app.
"""
