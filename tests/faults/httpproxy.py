"""An HTTP proxy on 127.0.0.1 in front of the API server that answers some requests itself with an
error (429 Too Many Requests, 503 Service Unavailable), the way an overloaded or restarting API server
does. The client speaks plain HTTP to it; it speaks TLS, with the kubeconfig's client certificate, to
the API server. Every request is logged with its time and the answer it got."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from kubernetes import client as k8s


@dataclass(frozen=True)
class Seen:
    at: float
    method: str
    path: str
    status: int
    injected: bool


Injector = Callable[[str, str], "tuple[int, dict[str, str]] | None"]
"""(method, path) -> (status, headers) to answer with instead of the API server, or None to forward."""


class FaultProxy:
    def __init__(self, upstream: k8s.Configuration, inject: Injector) -> None:
        self.inject = inject
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        host = upstream.host.split("://", 1)[1]
        self._upstream_host, _, port = host.partition(":")
        self._upstream_port = int(port or 443)
        context = ssl.create_default_context(cafile=upstream.ssl_ca_cert)
        context.load_cert_chain(upstream.cert_file, upstream.key_file)
        self._context = context
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def injected(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.injected]

    def _note(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPSConnection(self._upstream_host, self._upstream_port, context=self._context,
                                                 timeout=60)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = proxy.inject(self.command, self.path)
                if answer is not None:
                    status, headers = answer
                    payload = b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":%d}' % status
                    proxy._note(Seen(time.monotonic(), self.command, self.path, status, True))
                    self._reply(status, list(headers.items()) + [("Content-Type", "application/json")], payload)
                    return
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                status, headers, payload = proxy._forward(self.command, self.path, forwarded, body)
                proxy._note(Seen(time.monotonic(), self.command, self.path, status, False))
                kept = [(k, v) for k, v in headers if k.lower() not in ("transfer-encoding", "connection",
                                                                          "content-length")]
                self._reply(status, kept, payload)

            def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        return Handler
