"""Kept-alive HTTP/1.1 connections to one API server: sockets from the standard library, answers parsed by
llhttp (the `httptools` binding of Node.js's C parser).

Why not the `kubernetes` client's own path (`ApiClient.call_api` over urllib3's pool): on this 2-core
machine, where the client shares the cores with the control plane, 2,000 server-side-apply dry runs cost
0.86-0.89 ms of client CPU a request through it and 0.37-0.42 ms through `http.client`, and took 2.6-2.7 s
against 1.7-2.2 s (`bench/bench_cold_path.py` measures the whole sync). A cold sync sends two requests per
object, so the client's share decided how far it stays from a bare client's one. `http.client` itself
then cost half of that: its header parsing goes through the `email` package and it writes a request's
head and body apart; one write and llhttp take 0.20-0.24 ms a request against its 0.40-0.47 (500 dry runs
one after another), and a 1,000-object sync in five stacks used 0.3 CPU-s less while its requests ran.

Everything else stays the library's: the kubeconfig (exec plugins, token files and their refresh hook,
client certificates, CA data) is loaded into its `Configuration`, which this module only reads; watches
still stream through `call_api`. A configuration this module does not speak (a proxy, a TLS server name
or hostname override, socket options) gets no transport, and `Cluster` keeps using `call_api`.

Retries follow the urllib3 rules the client was configured with (`cluster.CONNECTION_RETRIES`): a request
that could not connect is tried up to three more times; one whose connection broke after it was sent, only
if its method is idempotent; one whose answer stopped coming (a read timeout) never.
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})
_WITH_BODY = frozenset({"PATCH", "POST", "PUT"})
_UNSAFE_URL = re.compile("[\x00-\x20\x7f]")  # what `http.client` refuses in a request line
_READ_SIZE = 65536
_RETRIES = 3
_KEPT = "_reconciler_transport"
IDLE_LIMIT_S = 60.0
"""A connection idle this long is closed instead of used: the API server closes one idle for 90 s (its
`http.Server` IdleTimeout), and a request sent as that close crosses it would fail, or be sent twice."""


class Answer:
    """One response, read whole: status, reason, headers, body bytes."""

    __slots__ = ("status", "reason", "headers", "data")

    def __init__(self, status: int, reason: str, headers: dict[str, str], data: bytes) -> None:
        self.status, self.reason, self.headers, self.data = status, reason, headers, data


class _Reading:
    """What llhttp (`httptools`) reports while it parses one response: its callbacks."""

    __slots__ = ("parser", "status", "reason", "headers", "body", "complete", "keep_alive")

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status, self.reason, self.headers, self.body = 0, "", {}, []
        self.complete = self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text  # RFC 9110 5.3

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_headers_complete(self) -> None:
        """llhttp's verdicts are read here: once the message is complete it is ready for the next one."""
        parser = self.parser
        assert parser is not None
        self.status, self.keep_alive = parser.get_status_code(), parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True

    def read_from(self, sock: socket.socket) -> None:
        """Receive and parse until the answer is complete; a server that closes before then raises
        `http.client.RemoteDisconnected` (no answer) or `IncompleteRead`, one that does not speak HTTP
        `http.client.HTTPException`, as `http.client` would."""
        while not self.complete:
            data = sock.recv(_READ_SIZE)
            if not data:
                if self._ends_at_close():
                    return
                if self.headers:
                    raise http.client.IncompleteRead(b"".join(self.body))
                raise http.client.RemoteDisconnected("the server closed the connection without an answer")
            try:
                self.parser.feed_data(data)  # type: ignore[union-attr]  # set until the answer is read
            except httptools.HttpParserError as exc:
                raise http.client.HTTPException(f"not an HTTP answer: {exc}") from exc

    def _ends_at_close(self) -> bool:
        """A body without a length or chunks (HTTP/1.0 style) is whole when the server closes."""
        named = {key.lower() for key in self.headers}
        return self.status > 0 and not named & {"content-length", "transfer-encoding"}


class _Connection:
    """One kept-alive connection: each request written in one `sendall` (head and body together: one TLS
    record, where `http.client` writes two), each answer parsed by llhttp (see the module docstring)."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock

    def exchange(self, message: bytes, read_timeout: float) -> tuple[Answer, bool]:
        """Send one request (`_request_message`) and read its answer; returns it and whether the connection may
        be used again. Raises OSError (TimeoutError for a read timeout) or `http.client.HTTPException`."""
        sock = self.sock
        if sock is None:
            raise http.client.NotConnected()
        sock.settimeout(read_timeout)
        sock.sendall(message)
        reading = _Reading()
        try:
            reading.read_from(sock)
        finally:
            reading.parser = None  # the parser holds `reading` as its protocol: no cycle left for the collector
        answer = Answer(reading.status, reading.reason, reading.headers, b"".join(reading.body))
        return answer, reading.complete and reading.keep_alive

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def _request_message(method: str, url: str, host_header: str, payload: bytes | None,
                     headers: dict[str, str]) -> bytes:
    """The request line, headers and body, as `http.client` writes them (Host, Accept-Encoding: identity, a
    Content-Length for a body and for a body-carrying method without one), refusing what it refuses: a
    URL or header value that would end the line early."""
    if _UNSAFE_URL.search(url):
        raise http.client.InvalidURL(f"URL can't contain control characters: {url!r}")
    lines = [f"{method} {url} HTTP/1.1", f"Host: {host_header}", "Accept-Encoding: identity"]
    if payload is not None or method in _WITH_BODY:
        lines.append(f"Content-Length: {len(payload or b'')}")
    for key, value in headers.items():
        text = str(value)
        if "\r" in text or "\n" in text or "\r" in key or "\n" in key or ":" in key:
            raise ValueError(f"invalid header {key!r}")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b"")


class Transport:
    """A pool of kept-alive connections to one API server; thread-safe (a connection serves one request at a
    time, and goes back to the pool after it unless the server said it closes it)."""

    def __init__(self, configuration: Any, default_headers: dict[str, str], max_idle: int) -> None:
        self._configuration = configuration
        self._default_headers = dict(default_headers)
        parts = urlsplit(str(configuration.host))
        self._secure = parts.scheme == "https"
        self._host, self._port = parts.hostname or "localhost", parts.port or (443 if self._secure else 80)
        self._host_header = _host_header(self._host, self._port, self._secure)
        self._base = parts.path.rstrip("/")
        self._context = _tls_context(configuration) if self._secure else None
        self._idle: list[tuple[_Connection, float]] = []  # with when it went idle
        self._lock = threading.Lock()
        self._max_idle = max_idle

    def request(self, method: str, path: str, query: list[tuple[str, Any]], body: Any, headers: dict[str, str],
                timeout: tuple[float, float]) -> Answer:
        """Send one request and read its answer; raises OSError or `http.client.HTTPException` when there is
        none (after the retries the module docstring names)."""
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        payload = body if body is None or isinstance(body, bytes) else json.dumps(body, default=_iso).encode()
        message = _request_message(method, url, self._host_header, payload, {**self._auth_headers(), **headers})
        attempts = 0
        while True:
            connection = self._checkout(timeout, attempts)
            try:
                answer, reusable = connection.exchange(message, timeout[1])
            except TimeoutError:
                connection.close()
                raise
            except (OSError, http.client.HTTPException):
                connection.close()
                attempts += 1
                if method not in _IDEMPOTENT or attempts > _RETRIES:
                    raise
                continue
            except BaseException:
                connection.close()
                raise
            self._checkin(connection, not reusable)
            return answer

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _since in idle:
            connection.close()

    def _auth_headers(self) -> dict[str, str]:
        """The credentials the library's `auth_settings` gives now (a refresh hook renews an exec plugin's or a
        mounted service account's token), plus its default headers."""
        headers = dict(self._default_headers)
        for setting in self._configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def _checkout(self, timeout: tuple[float, float], attempts: int) -> _Connection:
        """The most recently used idle connection that is young enough and that the server has not closed, or a
        new one (connect failures retried)."""
        while True:
            with self._lock:
                connection, since = self._idle.pop() if self._idle else (None, 0.0)
            if connection is None:
                break
            if time.monotonic() - since < IDLE_LIMIT_S and not _dropped(connection):
                return connection
            connection.close()
        while True:
            try:
                return self._connect(timeout[0])
            except OSError:
                attempts += 1
                if attempts > _RETRIES:
                    raise

    def _connect(self, connect_timeout: float) -> _Connection:
        """A new connection (TLS handshake included) within the connect timeout, as `http.client` opens one."""
        sock = socket.create_connection((self._host, self._port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _checkin(self, connection: _Connection, will_close: bool) -> None:
        """Back to the pool; connections idle past the limit leave it (the oldest are first in the list), so
        that what a burst opened is not held after it, half-closed by the server, for as long as the process runs."""
        now = time.monotonic()
        with self._lock:
            stale = 0
            while stale < len(self._idle) and now - self._idle[stale][1] >= IDLE_LIMIT_S:
                stale += 1
            expired, self._idle = self._idle[:stale], self._idle[stale:]
            kept = not will_close and connection.sock is not None and len(self._idle) < self._max_idle
            if kept:
                self._idle.append((connection, now))
        for old, _since in expired:
            old.close()
        if not kept:
            connection.close()


def _host_header(host: str, port: int, secure: bool) -> str:
    """The Host header `http.client` sends: the port only when it is not the scheme's, an IPv6 address in brackets."""
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if secure else 80) else f"{name}:{port}"


def _iso(value: Any) -> str:
    """Dates and times as the library's `sanitize_for_serialization` writes them (ISO 8601)."""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dropped(connection: _Connection) -> bool:
    """Whether a kept-alive connection was closed by the server (readable while idle means EOF or a stray
    byte; either way it cannot carry a request): urllib3's `is_connection_dropped`, with poll, which has no
    file-descriptor limit."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _tls_context(configuration: Any) -> ssl.SSLContext:
    """The TLS settings `kubernetes.client.rest` gives urllib3, as one context: CA file or data, client
    certificate, and no verification only when the kubeconfig says insecure-skip-tls-verify."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def transport_of(api_client: Any, max_idle: int) -> Transport | None:
    """The client's transport, made on first use and kept on the client object, so that every `Cluster`
    built on one client shares its connections as they shared its urllib3 pool; None for a configuration
    this module leaves to the library (see the module docstring)."""
    known = getattr(api_client, _KEPT, False)
    if known is False:
        configuration = api_client.configuration
        unsupported = (configuration.proxy or configuration.tls_server_name or configuration.socket_options
                       or configuration.assert_hostname is not None
                       or urlsplit(str(configuration.host)).scheme not in ("http", "https"))
        known = None if unsupported else Transport(configuration, api_client.default_headers or {}, max_idle)
        setattr(api_client, _KEPT, known)
    return known
