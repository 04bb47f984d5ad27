"""The access-log line, written straight to ccobs's handler when nothing else would see it.

``ccobs proxy`` writes one ``ccobs.request`` line per request. Through the
ordinary chain most of that line's cost is machinery, not the line: structlog
binds a logger for the call, the standard library makes a ``LogRecord`` (and
looks up the caller's frame), ``ProcessorFormatter`` copies that record into a
second one, and the handler's and formatter's dispatch run around the few
processors that actually make the line.

When :func:`~ccobs.logging.configure_logging`'s JSON handler is the only place
a ``ccobs.request`` record would reach (no other handler on the way, no
filter, structlog and the formatter still running exactly the processors
``configure_logging`` gave them), the line that chain writes is known, and
:class:`JsonLineWriter` builds it in one pass: the four first keys, the
fields, the context variables structlog binds, in the chain's order; the
chain's own redaction (:func:`~ccobs.redaction.redact`, as
:func:`~ccobs.logging.redact_event` calls it) over every field and bound
value; the chain's own renderer; written under the handler's lock. Only the
three first values, which the writer makes itself (the time, the level name,
the logger's name), skip the redaction, which leaves them unchanged. The
usual line (a ``str`` event, field names redaction leaves alone, values JSON
holds once redacted) takes a shorter way to the same bytes:
:class:`~ccobs.line_encoder.LineEncoder` redacts and encodes its fields in one
pass, remembering the strings redaction left unchanged. A call
the one pass does not cover (a traceback, stack information, positional
arguments, a method other than ``debug``/``info``/``warning``/``error``/
``critical``) runs the chain's processors themselves, still without the
records. Tests hold both to the chain's line byte for byte.

Any other configuration (a second handler such as pytest's capture or a
user's file handler, a filter, ``structlog.configure`` called again, the
console renderer) sends the line the ordinary way, which stays the
reference: :meth:`JsonLineWriter.write` answers False and the caller logs it
through its structlog logger; so does a line whose processing raises, so
the chain meets the failure and handles it its own way. Other loggers' lines
always take the ordinary chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import copy_context
from typing import Any, Final

import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from structlog.typing import EventDict, Processor

from ccobs.line_encoder import LineEncoder
from ccobs.redaction import redact

__all__ = ["JsonLineWriter", "write_line"]

_STRUCTLOG_CONFIG: Final[Any] = getattr(structlog._config, "_CONFIG", None)
"""structlog's live configuration (private): without it there is no fast path."""

_FIRST_KEYS: Final = ("timestamp", "level", "logger", "event")
_FIRST_KEYS_SET: Final = frozenset(_FIRST_KEYS)
_ONE_PASS_METHODS: Final = frozenset({"debug", "info", "warning", "error", "critical"})
"""Methods whose level name is the method's name (``add_log_level`` maps the others)."""
_PREFIX_LENGTH: Final = len(STRUCTLOG_KEY_PREFIX)


class JsonLineWriter:
    """Writes a structlog call's JSON line to one handler, without a ``LogRecord``.

    Made by ``configure_logging`` for the JSON handler it installs and held
    by that handler (``handler.line_writer``), so it lives and dies with that
    configuration. ``structlog_processors`` is the list given to
    ``structlog.configure``: its first processor filters by level, which the
    caller has done, and its last wraps the event for ``ProcessorFormatter``.
    ``timestamp`` makes the chain's ``timestamp`` value for now; the
    formatter's processors end with the key ordering, the redaction and the
    renderer, which the one pass uses (the renderer) or does (order, redaction).
    """

    __slots__ = (
        "_chain",
        "_formatter",
        "_formatter_processor_list",
        "_formatter_processors",
        "_handler",
        "_line_encoder",
        "_logger_factory",
        "_render",
        "_structlog_processors",
        "_timestamp",
    )

    def __init__(
        self,
        handler: logging.StreamHandler[Any],
        formatter: structlog.stdlib.ProcessorFormatter,
        structlog_processors: Sequence[Processor],
        logger_factory: object,
        timestamp: Callable[[], str],
        encode: Callable[[Any], str],
    ) -> None:
        self._handler = handler
        self._formatter = formatter
        self._formatter_processors = tuple(formatter.processors)
        self._formatter_processor_list = list(formatter.processors)
        """The same, as the list the formatter holds: compared per line without a copy."""
        self._structlog_processors = list(structlog_processors)
        self._logger_factory = logger_factory
        self._timestamp = timestamp
        self._line_encoder = LineEncoder(encode)
        self._render = self._formatter_processors[-1]
        self._chain: tuple[Processor, ...] = (
            *self._structlog_processors[1:-1],
            *self._formatter_processors[1:],
        )

    def applies(self, logger: logging.Logger, level: int) -> bool:
        """Whether a ``level`` line of ``logger`` would reach this handler alone, as configured.

        Every condition is a few attribute reads, checked for every line, so
        a configuration changed at any time is honoured from the next line on.
        """
        handler = self._handler
        root_handlers = logging.root.handlers
        if (
            logger.filters
            or handler.filters
            or level < handler.level
            or handler.formatter is not self._formatter
            or len(root_handlers) != 1
            or root_handlers[0] is not handler
        ):
            return False
        current: logging.Logger | None = logger
        while current is not None and current is not logging.root:
            if current.handlers or not current.propagate:
                return False
            current = current.parent
        config = _STRUCTLOG_CONFIG
        return (
            config is not None
            and config.logger_factory is self._logger_factory
            and config.default_wrapper_class is structlog.stdlib.BoundLogger
            and config.default_context_class is dict
            and config.default_processors == self._structlog_processors
            and self._formatter.processors == self._formatter_processor_list
        )

    def write(
        self, logger: logging.Logger, level: int, method_name: str, event: str, fields: EventDict
    ) -> bool:
        """Write ``logger.<method_name>(event, **fields)``'s line; False to leave it to the chain.

        ``level`` is ``method_name``'s level number, already checked against
        the logger's level by the caller. False, and nothing written, unless
        :meth:`applies`; also False when making the line raises, so the chain
        meets the same input and handles the failure its own way.
        """
        if not self.applies(logger, level):
            return False
        try:
            # ``exc_info``, ``stack_info``, ``positional_args``: keywords a chain processor
            # acts on, so a call with one of them runs the processors.
            if (
                method_name in _ONE_PASS_METHODS
                and "exc_info" not in fields
                and "stack_info" not in fields
                and "positional_args" not in fields
            ):
                line = self._plain_line(logger, method_name, event, fields)
                if line is None:
                    line = self._one_pass(logger, method_name, event, fields)
            else:
                line = self._processed(logger, method_name, event, fields)
        except Exception:
            return False
        if not isinstance(line, str):
            return False
        handler = self._handler
        lock = handler.lock  # what ``Handler.acquire`` and ``release`` take, without their calls
        if lock is None:
            return False
        lock.acquire()
        try:
            stream = handler.stream
            stream.write(line + handler.terminator)
            # ``StreamHandler.flush`` takes the lock held here again; the stream's own
            # flush is what it calls, unless a subclass made flush its own.
            if type(handler).flush is logging.StreamHandler.flush:
                if stream and hasattr(stream, "flush"):
                    stream.flush()
            else:
                handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(_failed_record(logger, level, line))
        finally:
            lock.release()
        return True

    def _plain_line(
        self, logger: logging.Logger, method_name: str, event: str, fields: EventDict
    ) -> str | None:
        """:meth:`_one_pass`'s line for the usual call, in fewer steps; None for any other.

        The usual call: a ``str`` event, no field named like one of the four first
        keys, field names redaction leaves alone, values JSON holds once redacted
        (no set, no object). The fields and the bound context variables are
        gathered in the chain's order into one dict, which the writer's
        :class:`~ccobs.line_encoder.LineEncoder` redacts and encodes in one pass.
        Tests hold it to :meth:`_one_pass` byte for byte.
        """
        if type(event) is not str or not _FIRST_KEYS_SET.isdisjoint(fields):
            return None
        body = {"event": event}
        body.update(fields)
        for variable, value in copy_context().items():
            name = variable.name
            if name.startswith(STRUCTLOG_KEY_PREFIX) and value is not Ellipsis:
                key = name[_PREFIX_LENGTH:]
                if key not in _FIRST_KEYS_SET:
                    body.setdefault(key, value)
        try:
            return self._line_encoder.line(
                self._timestamp(), method_name, logger.name, body.items()
            )
        except Exception:  # the general way meets the same value and decides
            return None

    def _one_pass(
        self, logger: logging.Logger, method_name: str, event: str, fields: EventDict
    ) -> Any:
        """The chain's line, built in one pass (the module's docstring says what it does)."""
        # The fields, then what structlog's context variables bind and the call did not
        # name (``merge_contextvars``), then bytes decoded (``UnicodeDecoder``).
        body = dict(fields)
        for variable, value in copy_context().items():
            name = variable.name
            if name.startswith(STRUCTLOG_KEY_PREFIX) and value is not Ellipsis:
                body.setdefault(name[_PREFIX_LENGTH:], value)
        for key, value in body.items():
            if isinstance(value, bytes):
                body[key] = value.decode("utf-8", "replace")
        # The four first keys are the chain's to set, in front (``order_keys``).
        for key in _FIRST_KEYS:
            body.pop(key, None)
        line = {
            "timestamp": self._timestamp(),
            "level": method_name,
            "logger": logger.name,
            "event": redact(event, stringify=True),
        }
        line.update(redact(body, stringify=True))
        return self._render(logger, method_name, line)

    def _processed(
        self, logger: logging.Logger, method_name: str, event: str, fields: EventDict
    ) -> Any:
        """The chain's line, made by the chain's processors: what structlog's
        ``BoundLogger`` makes of the call (its empty context, the keywords, the event),
        through every processor but the level filter, the formatter's wrapping and the
        removal of the formatter's metadata, which the writer never adds."""
        event_dict: Any = dict(fields)
        event_dict["event"] = event
        for processor in self._chain:
            event_dict = processor(logger, method_name, event_dict)
        return event_dict


def _failed_record(logger: logging.Logger, level: int, line: str) -> logging.LogRecord:
    """A record for ``Handler.handleError``, made only when writing failed."""
    return logger.makeRecord(logger.name, level, "(access_line)", 0, line, (), None)


def write_line(
    structlog_logger: Any,
    logger: logging.Logger,
    level: int,
    method_name: str,
    event: str,
    fields: EventDict,
) -> None:
    """Log ``structlog_logger.<method_name>(event, **fields)``, straight to the handler if it can.

    ``structlog_logger`` is an unbound structlog logger over the standard
    library logger ``logger``; ``level`` is ``method_name``'s level, already
    found enabled. The line goes through the ordinary chain unless the root
    logger's only handler carries a :class:`JsonLineWriter` that takes it.
    """
    handlers = logging.root.handlers
    if len(handlers) == 1:
        writer: JsonLineWriter | None = getattr(handlers[0], "line_writer", None)
        if writer is not None and writer.write(logger, level, method_name, event, fields):
            return
    method: Callable[..., Any] = getattr(structlog_logger, method_name)
    method(event, **fields)
