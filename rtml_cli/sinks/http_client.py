"""The HTTP sink's minimal HTTP/1.1 client: request head, bounded response reading.

Why not ``http.client``: its header parsing (``email.parser``) and per-response ``makefile``
were most of the sink's per-request cost (benchmarks/README.md); why not httpx: measured at
well under 0.7 of a bare-socket loop (docs/ARCHITECTURE.md, "HTTP client"). What this client
reads is what a model endpoint sends: ``Content-Length``, chunked bodies, ``Connection:
close``, HTTP/1.0, bodies that run to the end of the connection, interim 1xx responses and
bodiless 204/304.

Every response is **bounded**, in time and in size:

- :class:`Reader` receives under a *deadline* (``--timeout`` for the whole request): before
  each ``recv`` the socket's timeout is cut to the time left, so a server dripping one byte
  at a time cannot stretch a request past its deadline (a per-read timeout would reset with
  every byte).
- :func:`read_response` refuses a body over ``max_body`` bytes (``--max-response-bytes``)
  before holding it: a declared ``Content-Length`` over the cap is refused unread, a chunked
  or read-to-close body as soon as it passes the cap.

How a response fails decides what the sink does with the request (see
:meth:`rtml_cli.sinks.http_sender.Sender._post`):

- :class:`NoResponse` (or a connection error) before any byte of the response: the server
  may not have taken the request (a kept-alive connection it had closed, a restart), so the
  request may be sent again — and each re-send is counted as a retry.
- :class:`ResponseError` once the response has begun (cut mid-body, malformed, too large):
  the server took the request and answered; sending it again would duplicate it, so it is
  counted as an error of its ``kind`` and the connection is dropped.
- :class:`TimeoutError`: the deadline passed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from rtml_cli.errors import UsageError

#: Default cap of a response body (``--max-response-bytes``): a model's answer is small;
#: anything near this is a misconfigured endpoint, and must not be held in memory.
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20

#: Error kinds of a response that began but cannot be used (the summary's error names).
INCOMPLETE = "incomplete response"
MALFORMED = "bad response"
TOO_LARGE = "response too large"

_MAX_LINE = 65536
_MAX_HEADERS = 100
_RECV_SIZE = 65536
#: The socket timeout is cut to the time left only when it is this much shorter than the
#: timeout already set: the common one-recv response then costs no extra syscall, and a
#: request overshoots its deadline by at most this.
_SLACK_S = 0.002
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class ResponseError(Exception):
    """A response that began but cannot be used; ``kind`` is one of the error kinds above."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class NoResponse(ConnectionError):
    """The connection closed before any byte of the response arrived."""


class Reader:
    """A receive buffer over one connection, reading under a deadline.

    Parameters
    ----------
    recv : ``socket.recv`` (or any ``f(n) -> bytes``, ``b""`` at the end of the stream).
    settimeout : ``socket.settimeout``, to cut the wait of the next ``recv`` to the time
        left before :attr:`deadline`; ``None`` for a source that never blocks (tests).
    timeout : the timeout currently set on the socket.
    """

    __slots__ = ("_recv", "_settimeout", "_buf", "_pos", "deadline", "timeout", "started")

    def __init__(
        self,
        recv: Callable[[int], bytes],
        settimeout: Callable[[float], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        self._recv = recv
        self._settimeout = settimeout
        # Immutable bytes: when everything buffered has been read (the usual case), the next
        # recv's bytes become the buffer without a copy.
        self._buf = b""
        self._pos = 0
        #: ``time.monotonic()`` by which the current response must be complete.
        self.deadline: float | None = None
        self.timeout = timeout
        #: whether any byte of the current response has arrived (see :class:`NoResponse`)
        self.started = False

    def begin(self) -> None:
        """Start reading a new response (bytes already buffered count as its start)."""
        self.started = self._pos < len(self._buf)

    def _fill(self) -> bool:
        """Receive more bytes into the buffer; ``False`` at the end of the stream."""
        if self.deadline is not None and self._settimeout is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not complete within its timeout")
            if self.timeout is None or left < self.timeout - _SLACK_S:
                self._settimeout(left)
                self.timeout = left
        try:
            data = self._recv(_RECV_SIZE)
        except TimeoutError:
            raise
        except OSError as exc:
            if self.started:
                raise ResponseError(INCOMPLETE, f"connection lost mid-response ({exc})") from None
            raise
        if not data:
            return False
        self.started = True
        if self._pos == len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0
        return True

    def _eof(self, what: str) -> Exception:
        if not self.started:
            return NoResponse("the server closed the connection without a response")
        return ResponseError(INCOMPLETE, f"the server closed the connection {what}")

    def read_head(self) -> bytes:
        """The status line and header lines of a response, CRLF-separated, without the blank
        line ending them.

        The common case, the whole head in the buffer with CRLF endings, is one search and
        one slice; anything else (bare LF endings, a head longer than 64 KiB so far) is read
        line by line, each line and the count of lines bounded.
        """
        while True:
            buf, pos = self._buf, self._pos
            end = buf.find(b"\r\n\r\n", pos)
            if end >= 0:
                self._pos = end + 4
                return buf[pos:end]
            if len(buf) - pos > _MAX_LINE or buf.find(b"\n\n", pos) >= 0:
                break
            if not self._fill():
                raise self._eof("inside the response head")
        lines: list[bytes] = []
        for _ in range(_MAX_HEADERS + 2):
            line = self.readline()
            if line in (b"\r\n", b"\n"):
                return b"\r\n".join(lines)
            lines.append(line.rstrip(b"\r\n"))
        raise ResponseError(MALFORMED, f"more than {_MAX_HEADERS} headers")

    def readline(self) -> bytes:
        """One line, with its line ending (at most ``_MAX_LINE`` bytes)."""
        buf, pos = self._buf, self._pos
        i = buf.find(b"\n", pos)
        while i < 0:
            scanned = len(buf) - pos
            if scanned > _MAX_LINE:
                raise ResponseError(MALFORMED, f"a header line longer than {_MAX_LINE} bytes")
            if not self._fill():
                raise self._eof("inside the response head")
            buf, pos = self._buf, self._pos
            i = buf.find(b"\n", pos + scanned)
        self._pos = i + 1
        return buf[pos : i + 1]

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        while len(self._buf) - self._pos < n:
            if not self._fill():
                got = len(self._buf) - self._pos
                raise self._eof(f"after {got} of {n} body bytes")
        pos = self._pos
        self._pos = pos + n
        return self._buf[pos : pos + n]

    def read_to_close(self, cap: int) -> bytes:
        """Everything until the server closes the connection, at most ``cap`` bytes."""
        while self._fill():
            if len(self._buf) - self._pos > cap:
                raise ResponseError(TOO_LARGE, f"the body passed {cap:,} bytes")
        pos, self._pos = self._pos, len(self._buf)
        return self._buf[pos:]


def read_response(
    reader: Reader, max_body: int = DEFAULT_MAX_RESPONSE_BYTES
) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.x response: ``(status, body, close)``.

    ``close`` is true when the server will not keep the connection alive. Raises
    :class:`NoResponse` when the connection closed before the response began,
    :class:`ResponseError` for a response cut short, malformed or with a body over
    ``max_body`` bytes, :class:`TimeoutError` when :attr:`Reader.deadline` passed.
    """
    reader.begin()
    while True:
        status, close, length, chunked = _parse_head(reader.read_head())
        if 100 <= status < 200 and status != 101:
            continue  # an interim response (100 Continue): the real one follows
        break
    if status in (204, 304):
        return status, b"", close
    if chunked:
        # One growing buffer, not a list of chunks: a server sending one-byte chunks must
        # not make the client hold a Python object per byte.
        body = bytearray()
        while True:
            size_text = reader.readline().split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise ResponseError(MALFORMED, f"chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n"):
                    pass  # trailers
                return status, bytes(body), close
            if len(body) + size > max_body:
                raise ResponseError(TOO_LARGE, f"the chunked body passed {max_body:,} bytes")
            body += reader.read(size)
            reader.readline()  # the CRLF after the chunk
    if length is not None:
        if length > max_body:
            raise ResponseError(
                TOO_LARGE, f"Content-Length {length:,} is over the cap of {max_body:,} bytes"
            )
        return status, reader.read(length), close
    # Neither length nor chunked: the body runs until the server closes the connection.
    return status, reader.read_to_close(max_body), True


def _parse_head(head: bytes) -> tuple[int, bool, int | None, bool]:
    """``(status, close, content_length, chunked)`` from a response head (CRLF lines)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ResponseError(MALFORMED, f"status line {lines[0][:80]!r}")
    if len(lines) > _MAX_HEADERS + 1:
        raise ResponseError(MALFORMED, f"more than {_MAX_HEADERS} headers")
    status = int(parts[1])
    close = parts[0] == b"HTTP/1.0"
    length: int | None = None
    chunked = False
    for h in lines[1:]:
        name, _sep, value = h.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ResponseError(MALFORMED, f"Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            tokens = [t.strip() for t in value.lower().split(b",")]
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    return status, close, length, chunked


_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def request_head(
    host: str, port: int, default_port: int, path: str, headers: dict[str, str]
) -> bytes:
    """Everything of a POST request before the ``Content-Length`` value, built once.

    Building the head per request (``http.client.putrequest``/``putheader``) costs more than
    sending it; only the body length changes between requests. Names and values are checked
    here as ``http.client`` would, so a bad ``--header`` fails at start with a usage error.
    """
    if _BAD_URL_CHARS.search(path):
        raise UsageError(
            f"replay target path '{path}' contains spaces or control characters. "
            "Percent-encode them (e.g. %20 for a space)."
        )
    host_value = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_value += f":{port}"
    lines = [f"POST {path} HTTP/1.1"]
    given = {k.lower() for k in headers}
    if "host" not in given:
        lines.append(f"Host: {host_value}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    for name, value in headers.items():
        if name.lower() in ("content-length", "transfer-encoding"):
            continue  # the sink sets the body length itself
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
            raise UsageError(
                f"--header '{name}: {value}' is not a valid HTTP header (a name of letters, "
                "digits and -, a value on one line). Write it like --header 'X-Api-Key: abc'."
            )
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(
            f"--header values and the URL path must be Latin-1 text for {path}; "
            "percent-encode or ASCII-encode them."
        ) from None
