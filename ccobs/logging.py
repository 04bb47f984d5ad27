"""Structured logging: one JSON object per line, ours and every library's alike.

:func:`configure_logging` points structlog at the standard library and hangs a
single :class:`structlog.stdlib.ProcessorFormatter` handler on the root logger.
Lines from structlog loggers, from plain ``logging`` loggers and from uvicorn
all run through the same processors, so a log pipeline (Loki, CloudWatch,
``jq``) sees one shape: ``timestamp``, ``level``, ``logger``, ``event``, the
request id bound with :mod:`structlog.contextvars`, formatted exceptions, and
never a credential: :func:`redact_event` is the last step before rendering.

Run uvicorn with ``log_config=None`` after calling :func:`configure_logging`,
otherwise it installs its own handlers again when the server starts.
"""

from __future__ import annotations

import json
import json.encoder
import logging as stdlib_logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ccobs.access_line import JsonLineWriter
from ccobs.redaction import redact

__all__ = [
    "FORMATS",
    "LEVELS",
    "UVICORN_LOGGERS",
    "Timestamper",
    "add_timestamp",
    "configure_logging",
    "drop_color_message",
    "get_logger",
    "order_keys",
    "redact_event",
]

FORMATS: Final[tuple[str, ...]] = ("auto", "json", "console")
LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
UVICORN_LOGGERS: Final[tuple[str, ...]] = ("uvicorn", "uvicorn.error", "uvicorn.access")
"""Loggers uvicorn configures with handlers of its own; ours replace them."""

_FIRST_KEYS: Final = ("timestamp", "level", "logger", "event")
_MILLISECONDS: Final = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))
"""A timestamp's end for each millisecond, made once (``Timestamper.now``)."""


class _CcobsHandler(stdlib_logging.StreamHandler[TextIO]):
    """The root handler :func:`configure_logging` installs.

    A class of its own so a second call can find and replace it without
    touching handlers that belong to someone else (pytest's capture handlers,
    an application's file handler). A JSON handler carries the
    :class:`~ccobs.access_line.JsonLineWriter` that writes the access-log line
    without the logging machinery while this handler alone would receive it.
    """

    line_writer: JsonLineWriter | None = None


# --- processors -------------------------------------------------------------


def add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``timestamp``: UTC, ISO 8601, exactly milliseconds, ``Z`` suffix.

    Millisecond precision with a fixed width sorts lexically and parses in
    every log backend; ``Z`` rather than ``+00:00`` because that is what
    Loki, Elasticsearch and ``jq``'s ``fromdate`` expect. Lines from the
    standard library use the record's creation time, not the time the
    formatter happened to run. :func:`configure_logging` chains a
    :class:`Timestamper`, which writes the same and formats each second once.
    """
    now = _event_time(event_dict)
    seconds = int(now)
    event_dict["timestamp"] = _utc_second(seconds) + f".{int((now - seconds) * 1000):03d}Z"
    return event_dict


class Timestamper:
    """:func:`add_timestamp`, formatting the date and time of day once per second.

    ``strftime`` of the whole second is most of a timestamp's cost and every
    line within the same second shares it; only the milliseconds change. One
    per :func:`configure_logging`, so no state is shared between configurations.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[int, str] = (-1, "")
        """The last second formatted and its text, replaced as one tuple (thread-safe)."""

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["timestamp"] = self.format(_event_time(event_dict))
        return event_dict

    def now(self) -> str:
        """The timestamp of a line made now, outside the chain (``ccobs.access_line``).

        :meth:`format` of ``time.time()``, its milliseconds taken from a table:
        the clock is past 1970, so they are 0 to 999 (a test holds the two alike).
        """
        now = time.time()
        seconds = int(now)
        last = self._last
        if last[0] != seconds:
            last = self._last = (seconds, _utc_second(seconds))
        return last[1] + _MILLISECONDS[int((now - seconds) * 1000)]

    def format(self, now: float) -> str:
        """The timestamp of ``now`` (seconds since the epoch)."""
        seconds = int(now)
        last = self._last
        if last[0] != seconds:
            last = self._last = (seconds, _utc_second(seconds))
        return last[1] + f".{int((now - seconds) * 1000):03d}Z"


def _event_time(event_dict: EventDict) -> float:
    record = event_dict.get("_record")
    return record.created if isinstance(record, stdlib_logging.LogRecord) else time.time()


def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def drop_color_message(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop uvicorn's ``color_message`` extra: ANSI codes duplicating ``event``."""
    event_dict.pop("color_message", None)
    return event_dict


def order_keys(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Put ``timestamp``, ``level``, ``logger``, ``event`` first.

    JSON consumers don't care, but people reading raw lines (``kubectl
    logs``) find the same four fields in the same place on every line.
    """
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Remove credentials from every key and value of the event.

    Runs last before rendering so it also sees what earlier processors made,
    formatted exception text in particular, which routinely echoes request
    headers or URLs. Values the renderer would ``repr`` are redacted as that
    repr (``stringify=True``): an exception object passed as a value must not
    smuggle a key past the filter.
    """
    return cast(EventDict, redact(event_dict, stringify=True))


# --- configuration ----------------------------------------------------------


def _shared_processors(timestamper: Timestamper) -> list[Processor]:
    """Processors both paths run: structlog calls and foreign stdlib records."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
        structlog.processors.StackInfoRenderer(),
        # Formatted here, before the formatter, so exception text exists as a
        # string for redact_event to clean, in both renderers.
        structlog.processors.format_exc_info,
    ]


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _ReusedEncoderDumps:
    """``json.dumps`` for structlog's ``JSONRenderer``, its encoder made once.

    ``json.dumps(obj, default=...)`` builds a new ``JSONEncoder`` on every call,
    and ``JSONEncoder.encode`` builds a new C encoder on every call, a
    noticeable part of a log line's cost; this keeps one C encoder with
    ``json.dumps``'s options for the ``default`` the renderer passes (always the
    same) and joins its chunks, as ``encode`` does: same text. It is made
    without the circular-reference check: the renderer runs right after
    ``redact_event``, whose value is a tree of fresh containers cut at
    :data:`~ccobs.redaction.MAX_DEPTH`, so no cycle reaches it, and an encoder
    without that check keeps no state between calls (safe from any thread).
    """

    __slots__ = ("_made",)

    def __init__(self) -> None:
        self._made: tuple[object, Callable[[Any], str]] | None = None
        """The ``default`` and its encoding function, replaced as one tuple (thread-safe)."""

    def __call__(self, obj: Any, *, default: Callable[[Any], Any]) -> str:
        made = self._made
        if made is None or made[0] is not default:
            made = self._made = (default, _one_shot_encoder(default))
        return made[1](obj)


def _one_shot_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """``json.dumps(obj, default=default)`` for trees without cycles, its C encoder made once."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(default=default).encode
    encoder = make(
        None, default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def encode(obj: Any) -> str:
        return "".join(encoder(obj, 0))

    return encode


def _refuse_to_encode(value: Any) -> Any:
    """The ``default`` of the access-log line's own encoder: a value JSON cannot hold sends
    the line back to the renderer, whose ``default`` decides (``ccobs.access_line``)."""
    raise TypeError(f"{type(value).__name__} is left to the renderer")


def _renderer(fmt: str, stream: TextIO) -> Processor:
    tty = _is_tty(stream)
    if fmt == "console" or (fmt == "auto" and tty):
        # Colours only on a terminal: escape codes in a file are noise.
        return structlog.dev.ConsoleRenderer(colors=tty, sort_keys=False)
    return structlog.processors.JSONRenderer(serializer=_ReusedEncoderDumps())


def _check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    normalised = value.upper() if kind == "level" else value.lower()
    if normalised not in allowed:
        raise ValueError(f"invalid log {kind} {value!r}; expected one of: {', '.join(allowed)}")
    return normalised


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send structlog and standard-library logging through one set of processors.

    ``level`` is a standard level name (any case). ``fmt`` is ``json`` (one
    object per line), ``console`` (structlog's human renderer) or ``auto``:
    console when ``stream`` is a terminal, JSON otherwise, so a developer's
    shell is readable and a container's output is machine-parseable with no
    flag. ``stream`` defaults to ``sys.stderr`` at call time, keeping stdout
    free for CLI output.

    Idempotent: a second call replaces the handler the first one installed;
    other root handlers are left alone. Loggers are not cached on first use,
    so loggers created before this call pick the configuration up.
    """
    level_name = _check_choice("level", level, LEVELS)
    fmt_name = _check_choice("format", fmt, FORMATS)
    out = stream if stream is not None else sys.stderr

    timestamper = Timestamper()
    shared = _shared_processors(timestamper)
    renderer = _renderer(fmt_name, out)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            order_keys,
            redact_event,
            renderer,
        ],
    )
    handler = _CcobsHandler(out)
    handler.setFormatter(formatter)
    structlog_processors: list[Processor] = [
        structlog.stdlib.filter_by_level,
        *shared,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.UnicodeDecoder(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    logger_factory = structlog.stdlib.LoggerFactory()
    if isinstance(renderer, structlog.processors.JSONRenderer):
        handler.line_writer = JsonLineWriter(
            handler,
            formatter,
            structlog_processors,
            logger_factory,
            timestamper.now,
            _one_shot_encoder(_refuse_to_encode),
        )

    root = stdlib_logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CcobsHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level_name)

    for name in UVICORN_LOGGERS:
        uvicorn_logger = stdlib_logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(stdlib_logging.NOTSET)

    structlog.configure(
        processors=structlog_processors,
        context_class=dict,
        logger_factory=logger_factory,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the standard-library logger ``name``.

    Without a name, the logger is named after the calling module, resolved
    here once rather than by structlog walking the stack on every call.
    """
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "root")
    return structlog.stdlib.get_logger(name)
