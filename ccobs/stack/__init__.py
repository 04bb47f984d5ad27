"""The monitoring stack: configuration shared by docker compose and the native runner."""
