"""Argument types and option groups shared by the ``ccobs`` commands.

One declaration per option, whichever command offers it: the product's
commands (:mod:`ccobs.cli`) and the demo's (:mod:`ccobs.demo.commands`) read
``--host``, ``--port``, ``--seed`` and the rest from here, so they cannot drift.
"""

from __future__ import annotations

import argparse

from ccobs.stack.processes import bind_error


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def port_number(text: str) -> int:
    value = positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}")
    return value


def weights(text: str) -> dict[str, float]:
    """``model=weight,model=weight`` (a bare model weighs 1)."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        weights[name.strip()] = positive_float(weight) if weight else 1.0
    if not weights:
        raise argparse.ArgumentTypeError("expected at least one model")
    return weights


def require_free_port(host: str, port: int) -> None:
    """Fail before starting a server whose port is taken, with a way out, as ``stack up`` does."""
    if port == 0:
        return
    error = bind_error(port, host)
    if error is not None:
        raise ValueError(
            f"cannot listen on {host}:{port}: {error.strerror or error}. Stop what listens "
            "there, or choose another port with --port P (--port 0 takes a free one)."
        )


def config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config", metavar="FILE", help="YAML settings file (default: $CCOBS_CONFIG)"
    )


def listen_options(command: argparse.ArgumentParser, port: int, port_help: str = "port") -> None:
    """``--host`` and ``--port`` of a command that serves."""
    command.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    command.add_argument(
        "--port", type=port_number, default=port, help=f"{port_help} (default {port})"
    )


def seed_option(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument("--seed", type=int, help=f"seed for {what}")


def access_log_db_option(command: argparse.ArgumentParser, text: str) -> None:
    command.add_argument("--access-log-db", metavar="PATH", help=text)


def identities_option(
    command: argparse.ArgumentParser,
    default: str = "default: $CCOBS_IDENTITIES; unset: every caller is `unassigned`",
) -> None:
    command.add_argument(
        "--identities",
        metavar="FILE",
        help=f"identity file (YAML) naming key fingerprints by alias and team ({default})",
    )
