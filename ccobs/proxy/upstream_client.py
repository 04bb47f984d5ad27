"""The proxy's HTTP/1.1 client for its upstream: pooled, bounded, and cheap per call.

Why not httpx: measured one request at a time over loopback, an httpx
``AsyncClient`` call costs more of the proxy's time (its transport layers,
anyio streams and the pure-Python h11 parser) than a proxy may add to a
request (``benchmarks/RESULTS.md``, section 3, has the figures). This client
does what a pass-through proxy needs and nothing else, on asyncio streams:

- one request at a time per connection, idle connections kept for reuse
  (at most ``max_keepalive_connections``) and at most ``max_connections``
  in all; a request waits at most ``pool`` seconds for one;
- HTTP/1.1 response framing: ``content-length``, ``chunked`` (extensions and
  trailers skipped), or read until the upstream closes; ``1xx`` answers skipped;
- TLS for ``https://`` upstreams, with the system's certificates by default;
- ``connect``, ``read`` (each read) and ``write`` timeouts;
- ``gzip`` and ``deflate`` bodies decoded, for upstreams that compress
  although the proxy asks for ``identity``; any other coding is an error,
  since relaying it undecoded without its header would corrupt the answer.

Every failure is an :class:`UpstreamError`, so the proxy maps each kind to one
status and ``error_type`` without knowing about sockets.

One module although past 600 lines: the pool, the response framing and the
decoding share each connection's state and are only ever used together.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ccobs.proxy.read_deadline import ReadDeadline

MAX_HEAD_BYTES = 64 * 1024
"""Longest status line plus headers (and longest chunk-size line) accepted from the upstream."""
_READ_SIZE = 64 * 1024


class UpstreamError(Exception):
    """The upstream call failed; the message says how, for the proxy's error body."""


class UpstreamTimeout(UpstreamError):
    """A connect, read, write or pool wait took longer than its timeout."""


class UpstreamConnectionError(UpstreamError):
    """No connection, or it was refused, reset or closed before the answer was whole."""


class UpstreamProtocolError(UpstreamConnectionError):
    """The upstream's bytes are not a valid HTTP/1.1 response."""


class UpstreamDecodingError(UpstreamError):
    """The body does not match its ``content-encoding``, or the coding is unknown."""


class UpstreamTooLarge(UpstreamError):
    """A whole answer read into memory would pass its limit."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds; ``read`` applies to each read, so a stream may last as long as it keeps talking."""

    connect: float
    read: float
    write: float
    pool: float


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def idle_usable(self) -> bool:
        """False once the upstream closed it while idle (keep-alive timeouts do)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        # No wait_closed(): closing must not block on a peer that stopped reading.
        self.writer.close()


class _StaleConnection(Exception):
    """A reused connection closed before any byte of the answer: safe to try a new one."""


class _Inflate:
    """One content coding undone; ``deflate`` accepts the zlib format and raw deflate alike."""

    def __init__(self, coding: bytes) -> None:
        self.coding = coding
        wbits = 16 + zlib.MAX_WBITS if coding in (b"gzip", b"x-gzip") else zlib.MAX_WBITS
        self.zlib = zlib.decompressobj(wbits)
        self.started = False

    def decompress(self, data: bytes) -> bytes:
        try:
            out = self.zlib.decompress(data)
        except zlib.error:
            if self.coding != b"deflate" or self.started:
                raise
            # Servers disagree on what "deflate" means: retry as raw deflate.
            self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self.zlib.decompress(data)
        self.started = True
        return out

    def flush(self) -> bytes:
        return self.zlib.flush()


_CODINGS = frozenset({b"gzip", b"x-gzip", b"deflate"})


class _Decoding:
    """A response's content codings, undone in the reverse of the order they were applied."""

    def __init__(self, header: bytes) -> None:
        codings = [c.strip().lower() for c in header.split(b",")]
        codings = [c for c in codings if c not in (b"", b"identity")]
        for coding in codings:
            if coding not in _CODINGS:
                raise UpstreamDecodingError(
                    f"unsupported content-encoding {coding.decode('latin-1')!r}"
                )
        self.steps = [_Inflate(c) for c in reversed(codings)]

    def feed(self, data: bytes) -> bytes:
        try:
            for step in self.steps:
                data = step.decompress(data)
        except zlib.error as exc:
            raise UpstreamDecodingError(f"body does not match its content-encoding: {exc}") from exc
        return data

    def flush(self) -> bytes:
        data = b""
        try:
            for step in self.steps:
                data = (step.decompress(data) if data else b"") + step.flush()
        except zlib.error as exc:
            raise UpstreamDecodingError(f"body does not match its content-encoding: {exc}") from exc
        return data


class UpstreamResponse:
    """Status and headers of an answer whose body is still to be read (once).

    Read it with :meth:`read` or :meth:`iter_bytes` and always :meth:`close`:
    a connection goes back to the pool only when its body was read to the end.
    """

    def __init__(
        self,
        client: UpstreamClient,
        connection: _Connection,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        *,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
        deadline: ReadDeadline,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        """As received: original name case, repeats kept, values as bytes."""
        self._client = client
        self._connection: _Connection | None = connection
        self._length = length
        self._chunked = chunked
        self._keep_alive = keep_alive and (chunked or length is not None)
        self._phase = _UNREAD
        self._remaining = length
        """Body bytes still to come, when a ``content-length`` framed it."""
        self._decoding: _Decoding | None = None
        self._dechunker: _Dechunker | None = None
        self._deadline = deadline
        """The read timeout of the head's reads, on for the body's."""
        if length == 0 and not chunked:  # nothing to read: the connection is free now
            self._release(reusable=True)

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, decoded; past ``limit`` decoded bytes, :class:`UpstreamTooLarge`.

        The limit counts decoded bytes, so a small compressed body that
        inflates without end is stopped too (after at most one read's worth).
        """
        self._begin()
        chunks: list[bytes] = []
        size = 0
        while chunk := await self.next_bytes():
            size += len(chunk)
            if limit is not None and size > limit:
                raise UpstreamTooLarge(f"answer larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body, decoded, as it arrives."""
        self._begin()
        while chunk := await self.next_bytes():
            yield chunk

    async def next_bytes(self) -> bytes:
        """The body's next piece, decoded, as it arrives; ``b""`` once it has all come.

        What :meth:`iter_bytes` yields, one awaited call at a time: a relay
        that calls it directly has no async generator between it and the
        socket, each of which costs a step per piece and a raised
        ``StopAsyncIteration`` at the end. At the end, the connection goes
        back to the pool.
        """
        if self._phase != _READING:
            if self._phase == _ENDED:
                return b""
            self._begin()
        decoding = self._decoding
        while raw := await self._read_raw():
            data = decoding.feed(raw) if decoding is not None else raw
            if data:
                return data
        self._phase = _ENDED
        tail = decoding.flush() if decoding is not None else b""
        self._release(reusable=True)
        return tail

    def _begin(self) -> None:
        """Start reading the body, once: a second reader would get a part of it."""
        if self._phase != _UNREAD:
            raise RuntimeError("the response body was already read")
        self._phase = _READING
        encoding = self.header(b"content-encoding")
        if encoding:
            self._decoding = _Decoding(encoding)
        if self._chunked:
            self._dechunker = _Dechunker()

    def close(self) -> None:
        """Give the connection back: to the pool if the body was read whole, else closed.

        Not a coroutine: it never waits, so it runs whole even in a cancelled task.
        """
        self._release(reusable=False)

    def _release(self, *, reusable: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._deadline.close()
            self._client._release(connection, reusable=reusable and self._keep_alive)

    async def _read_raw(self) -> bytes:
        """The body's next bytes, framing removed, as one socket read brings them; ``b""`` at
        its end.

        One read, one timeout and one piece per arrival, however many chunks
        it holds: a stream's events that arrive together go on together, in
        one write to the client rather than one each.
        """
        connection = self._connection
        if connection is None:
            return b""
        reader = connection.reader
        wait = self._deadline.wait
        try:
            dechunker = self._dechunker
            if dechunker is not None:
                while not dechunker.done:
                    data = await wait(reader.read(_READ_SIZE))
                    if not data:
                        where = "in the middle of a chunk" if dechunker.in_chunk else "mid-body"
                        raise UpstreamConnectionError(f"upstream closed the connection {where}")
                    data = dechunker.feed(data)
                    if dechunker.done and dechunker.surplus:
                        # Bytes past the answer: the connection is spoilt.
                        self._keep_alive = False
                    if data:
                        return data
                return b""
            remaining = self._remaining
            if remaining is not None:
                if remaining <= 0:
                    return b""
                data = await wait(reader.read(min(remaining, _READ_SIZE)))
                if not data:
                    raise UpstreamConnectionError(
                        f"upstream closed the connection {remaining} bytes before the "
                        "end of the body its content-length announced"
                    )
                self._remaining = remaining - len(data)
                return data
            # Delimited by the upstream closing the connection.
            return await wait(reader.read(_READ_SIZE))
        except TimeoutError:
            raise UpstreamTimeout("upstream sent nothing within the read timeout") from None
        except OSError as exc:
            raise UpstreamConnectionError(f"upstream connection failed: {_describe(exc)}") from exc


_UNREAD, _READING, _ENDED = range(3)
"""An :class:`UpstreamResponse`'s body: not yet read, being read, read to its end."""


_SIZE, _DATA, _CRLF, _TRAILERS, _DONE = range(5)


class _Dechunker:
    """The chunked transfer coding (RFC 9112 7.1) undone on bytes as they arrive.

    A parser over a buffer rather than an awaited read per size line, chunk and
    CRLF: each of those awaits took a timeout of its own, and passed its chunk
    on alone. Chunk extensions and trailers are skipped; size lines and
    trailers are bounded by ``MAX_HEAD_BYTES``.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _SIZE
        self._remaining = 0
        self._trailer_bytes = 0
        self.surplus = 0
        """Bytes that came after the last chunk's trailers (none from a sound upstream)."""

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def in_chunk(self) -> bool:
        return self._state in (_DATA, _CRLF)

    def feed(self, data: bytes) -> bytes:
        """The body bytes that ``data`` completes; bad framing is an UpstreamProtocolError."""
        buffer = self._buffer
        buffer += data
        out: list[bytearray] = []
        pos = 0
        end = len(buffer)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                out.append(buffer[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                self._state = _CRLF
            elif state == _CRLF:
                if end - pos < 2:
                    break
                if buffer[pos : pos + 2] != b"\r\n":
                    raise UpstreamProtocolError("chunk not followed by CRLF")
                pos += 2
                self._state = _SIZE
            elif state == _DONE:
                self.surplus += end - pos
                pos = end
            else:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    self._check_line(end - pos)
                    break
                line = bytes(buffer[pos : line_end + 2])
                pos = line_end + 2
                if state == _SIZE:
                    self._check_line(len(line))
                    self._remaining = _chunk_size(line)
                    self._state = _DATA if self._remaining else _TRAILERS
                elif line == b"\r\n":
                    self._state = _DONE
                else:
                    self._trailer_bytes += len(line)
                    self._check_line(0)
        del buffer[:pos]
        return b"".join(out)

    def _check_line(self, length: int) -> None:
        if self._state == _SIZE:
            if length > MAX_HEAD_BYTES:
                raise UpstreamProtocolError("chunk-size line too long")
        elif self._trailer_bytes + length > MAX_HEAD_BYTES:
            raise UpstreamProtocolError("chunked trailers too long")


def _chunk_size(line: bytes) -> int:
    digits = line[:-2].partition(b";")[0].strip()
    if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise UpstreamProtocolError(f"invalid chunk size {line[:40]!r}")
    return int(digits, 16)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _content_length(values: list[bytes]) -> int:
    """The body length from every ``content-length`` value, which must all agree (RFC 9112 6.3)."""
    lengths = {v.strip() for value in values for v in value.split(b",")}
    if len(lengths) != 1:
        raise UpstreamProtocolError("conflicting content-length values")
    (length,) = lengths
    if not length.isdigit() or len(length) > 18:
        raise UpstreamProtocolError(f"invalid content-length {length[:40]!r}")
    return int(length)


def _parse_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, HTTP version and headers of a response head (status line to blank line)."""
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or rest[3:4] not in (b"", b" "):
        raise UpstreamProtocolError(f"invalid status line {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise UpstreamProtocolError(f"invalid header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return int(code), version, headers


def _default_tls() -> ssl.SSLContext:
    """The system's CA certificates (``SSL_CERT_FILE``, ``SSL_CERT_DIR`` honoured) or certifi's."""
    context = ssl.create_default_context()
    if not context.cert_store_stats()["x509_ca"]:
        try:
            import certifi
        except ImportError:  # pragma: no cover - certifi comes with httpx
            return context
        context.load_verify_locations(certifi.where())
    return context


class UpstreamClient:
    """Sends requests to one upstream (``base_url``) over pooled keep-alive connections."""

    def __init__(
        self,
        base_url: str,
        timeouts: Timeouts,
        *,
        max_connections: int,
        max_keepalive_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port], got {base_url!r}")
        self.tls = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.tls else 80)
        self.prefix = url.path.rstrip("/").encode()
        default_port = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (host if self.port == default_port else f"{host}:{self.port}").encode()
        self.timeouts = timeouts
        self.max_keepalive_connections = max_keepalive_connections
        self._ssl = (ssl_context or _default_tls()) if self.tls else None
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self.in_use = 0
        """Requests holding a connection now (a body not yet read or closed)."""

    @property
    def open_connections(self) -> int:
        """Connections open now: in use plus idle."""
        return self.in_use + sum(1 for c in self._idle if not c.writer.is_closing())

    async def send(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send one request and return once the answer's head is in.

        ``host`` and ``content-length`` are set here; ``headers`` must not
        carry them, nor any hop-by-hop header.
        """
        lines = [b"%s: %s\r\n" % pair for pair in headers]
        block = b"".join(lines)
        if block.count(b"\n") != len(lines) or b"\r" in block.replace(b"\r\n", b""):
            raise ValueError("a header name or value contains a line break")
        request = b"%s %s%s HTTP/1.1\r\nhost: %s\r\n%scontent-length: %d\r\n\r\n" % (
            method.encode(),
            self.prefix,
            path.encode(),
            self.host_header,
            block,
            len(body),
        )
        # A timeout only for a wait that can happen: each costs a timer on the event loop.
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.timeouts.pool):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamTimeout(
                    "no upstream connection free within the pool timeout"
                ) from None
        else:
            await self._slots.acquire()  # returns at once
        self.in_use += 1
        connection: _Connection | None = None
        try:
            connection = self._reuse()
            if connection is not None:
                try:
                    return await self._exchange(connection, method, request, body)
                except _StaleConnection:
                    connection.close()
            connection = await self._connect()
            try:
                return await self._exchange(connection, method, request, body)
            except _StaleConnection:
                raise UpstreamConnectionError(
                    "upstream closed the connection without answering"
                ) from None
        except BaseException:
            if connection is not None:
                connection.close()
            self._release_slot()
            raise

    def close(self) -> None:
        """Close the idle connections; those in use close when their responses do."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _reuse(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.idle_usable():
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeouts.connect):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                    limit=MAX_HEAD_BYTES,
                )
        except TimeoutError:
            raise UpstreamTimeout("connecting to the upstream timed out") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise UpstreamConnectionError(f"cannot connect: {_describe(exc)}") from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, method: str, request: bytes, body: bytes
    ) -> UpstreamResponse:
        writer = connection.writer
        try:
            if len(body) <= _READ_SIZE:
                writer.write(request + body)
            else:
                writer.write(request)
                writer.write(body)
            if writer.transport.get_write_buffer_size():  # else drain returns at once
                async with asyncio.timeout(self.timeouts.write):
                    await writer.drain()
            else:
                await writer.drain()  # still raises for a connection already lost
        except TimeoutError:
            raise UpstreamTimeout("sending the request to the upstream timed out") from None
        except (ConnectionResetError, BrokenPipeError):
            raise _StaleConnection from None
        except OSError as exc:
            raise UpstreamConnectionError(f"sending failed: {_describe(exc)}") from exc

        reader = connection.reader
        # One timer for the answer's reads, head and body: see read_deadline.py.
        deadline = ReadDeadline(self.timeouts.read)
        try:
            return self._answer(
                connection, method, await self._read_head(reader, deadline), deadline
            )
        except BaseException:
            deadline.close()
            raise

    async def _read_head(
        self, reader: asyncio.StreamReader, deadline: ReadDeadline
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, version and headers of the answer, past any ``1xx`` interim answers."""
        first = True
        while True:
            try:
                head = await deadline.wait(reader.readuntil(b"\r\n\r\n"))
            except TimeoutError:
                raise UpstreamTimeout("upstream sent no answer within the read timeout") from None
            except asyncio.IncompleteReadError as exc:
                if first and not exc.partial:
                    raise _StaleConnection from None
                raise UpstreamProtocolError(
                    "upstream closed the connection in the middle of the response head"
                ) from None
            except asyncio.LimitOverrunError:
                raise UpstreamProtocolError(
                    f"response head longer than {MAX_HEAD_BYTES} bytes"
                ) from None
            except ConnectionResetError:
                if first:
                    raise _StaleConnection from None
                raise UpstreamConnectionError("upstream reset the connection") from None
            except OSError as exc:
                raise UpstreamConnectionError(f"reading failed: {_describe(exc)}") from exc
            first = False
            status, version, headers = _parse_head(head)
            if status == 101 or status < 100:
                raise UpstreamProtocolError(f"unexpected status {status}")
            if status >= 200:  # 1xx answers are interim: the real one follows
                return status, version, headers

    def _answer(
        self,
        connection: _Connection,
        method: str,
        head: tuple[int, bytes, list[tuple[bytes, bytes]]],
        deadline: ReadDeadline,
    ) -> UpstreamResponse:
        """The answer whose head is ``head``, its body framed as the head says."""
        status, version, headers = head
        transfer_coding: list[bytes] = []
        lengths: list[bytes] = []
        keep_alive = version == b"HTTP/1.1"
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                transfer_coding += [c.strip().lower() for c in value.split(b",")]
            elif lowered == b"content-length":
                lengths.append(value)
            elif lowered == b"connection" and b"close" in value.lower():
                keep_alive = False
        length: int | None = None
        chunked = False
        if method == "HEAD" or status in (204, 304):
            length = 0
        elif transfer_coding:
            # Chunked only as the last coding; any other framing runs to the connection's end.
            chunked = transfer_coding[-1] == b"chunked"
        elif lengths:
            length = _content_length(lengths)
        return UpstreamResponse(
            self,
            connection,
            status,
            headers,
            length=length,
            chunked=chunked,
            keep_alive=keep_alive,
            deadline=deadline,
        )

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        if (
            reusable
            and len(self._idle) < self.max_keepalive_connections
            and connection.idle_usable()
        ):
            self._idle.append(connection)
        else:
            connection.close()
        self._release_slot()

    def _release_slot(self) -> None:
        self.in_use -= 1
        self._slots.release()
