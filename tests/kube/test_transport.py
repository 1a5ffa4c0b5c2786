"""The API transport's connection rules, against a real HTTP server on 127.0.0.1 whose misbehaviour each
test chooses: connections kept alive and reused, a connection the server dropped while idle never used,
a request whose connection broke after it was sent sent again only when its method is idempotent, a read
timeout never sent again (a watch's neither, on the `kubernetes` client's path), and credentials asked of
the configuration for every request. A kubeconfig with a proxy goes the `kubernetes` client's own way,
tested through a real CONNECT proxy to the devcluster."""

from __future__ import annotations

import http.client
import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from reconciler.errors import ClusterError
from reconciler.kube.cluster import ApiError, Cluster, new_api_client
from reconciler.kube.livecache import WatchKey, watch_events
from reconciler.kube.transport import IDLE_LIMIT_S, Transport, transport_of


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.drop_after_answer = False  # close the connection after answering, without saying so
        self.break_before_answer = 0  # close this many connections after reading a request, answering none
        self.release = threading.Event()  # an answer held back until this is set
        self.hold = False
        self.hold_watches = False  # hold back only the answers to watches (discovery is answered)
        self.framing = "length"  # how an answer's body ends: "length", "chunked", or "close" (the server closes)
        self.extra_headers: list[tuple[str, str]] = []
        self.bodies: list[tuple[str | None, bytes]] = []  # each request's Content-Length header and body
        self.lock = threading.Lock()
        self.closed = threading.Semaphore(0)  # released each time the server has closed a connection

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)
        self.closed.release()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up and closed before its answer (the read-timeout test) is what that test
        wants, not a server error to print in the middle of the test run's output."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


_CORE_V1 = json.dumps({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "configmaps", "singularName": "configmap", "namespaced": True, "kind": "ConfigMap",
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.command, self.path, self.headers.get("Authorization")))
            self.server.bodies.append((self.headers.get("Content-Length"), received))
            breaking = self.server.break_before_answer > 0
            self.server.break_before_answer -= breaking
        if breaking:
            self.close_connection = True
            return
        if self.server.hold or (self.server.hold_watches and "watch=true" in self.path):
            self.server.release.wait(timeout=30)
        body = _CORE_V1 if self.path == "/api/v1" else b'{"kind":"ConfigMap"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in self.server.extra_headers:
            self.send_header(name, value)
        if self.server.framing == "length":
            self.send_header("Content-Length", str(len(body)))
        elif self.server.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.server.framing == "chunked":
            for start in range(0, len(body), 7):
                piece = body[start:start + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.close_connection = self.server.drop_after_answer or self.server.framing == "close"

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def server() -> Iterator[_Server]:
    served = _Server()
    thread = threading.Thread(target=served.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served
    served.release.set()
    served.shutdown()
    served.server_close()


def _transport(server: _Server, configuration: k8s.Configuration | None = None) -> Transport:
    configuration = configuration or k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    return Transport(configuration, {}, max_idle=8)


def _get(transport: Transport, path: str = "/api/v1/namespaces/a/configmaps/b", method: str = "GET",
         timeout: tuple[float, float] = (5, 10)) -> int:
    return transport.request(method, path, [], b"{}" if method != "GET" else None, {}, timeout).status


def test_sequential_requests_share_one_kept_alive_connection(server: _Server) -> None:
    transport = _transport(server)
    assert [_get(transport) for _ in range(5)] == [200] * 5
    assert server.connections == 1


def test_an_answer_sent_in_chunks_is_read_whole_and_its_connection_kept(server: _Server) -> None:
    server.framing = "chunked"
    transport = _transport(server)
    answers = [transport.request("GET", "/api/v1/namespaces/a/configmaps/b", [], None, {}, (5, 10))
               for _ in range(2)]
    assert [a.data for a in answers] == [b'{"kind":"ConfigMap"}'] * 2
    assert server.connections == 1


def test_an_answer_without_a_length_ends_where_the_server_closes_and_its_connection_is_not_used_again(
        server: _Server) -> None:
    server.framing = "close"
    transport = _transport(server)
    answers = [transport.request("GET", "/api/v1/namespaces/a/configmaps/b", [], None, {}, (5, 10))
               for _ in range(2)]
    assert [(a.status, a.data) for a in answers] == [(200, b'{"kind":"ConfigMap"}')] * 2
    assert server.connections == 2


def test_the_answer_keeps_its_reason_and_headers_with_repeated_ones_joined(server: _Server) -> None:
    server.extra_headers = [("Warning", '299 - "first"'), ("Retry-After", "3"), ("Warning", '299 - "second"')]
    answer = _transport(server).request("GET", "/api/v1/namespaces/a/configmaps/b", [], None, {}, (5, 10))
    assert (answer.status, answer.reason) == (200, "OK")
    assert answer.headers["Retry-After"] == "3"
    assert answer.headers["Warning"] == '299 - "first", 299 - "second"'


def test_a_body_reaches_the_server_whole_and_a_bodiless_patch_says_its_length_is_zero_as_http_client_does(
        server: _Server) -> None:
    transport = _transport(server)
    transport.request("PATCH", "/api/v1/namespaces/a/configmaps/b", [], {"data": {"k": "v" * 5000}}, {}, (5, 10))
    transport.request("PATCH", "/api/v1/namespaces/a/configmaps/b", [], None, {}, (5, 10))
    transport.request("GET", "/api/v1/namespaces/a/configmaps/b", [], None, {}, (5, 10))
    sent = [(length, json.loads(body) if body else body) for length, body in server.bodies]
    assert sent == [(str(len(server.bodies[0][1])), {"data": {"k": "v" * 5000}}), ("0", b""), (None, b"")]


@pytest.mark.parametrize("name, value", [("Impersonate-User", "alice\r\nX-Evil: 1"), ("Bad\nName", "x")])
def test_a_header_that_would_end_its_line_early_is_refused_before_anything_is_sent(
        server: _Server, name: str, value: str) -> None:
    transport = _transport(server)
    with pytest.raises(ValueError):
        transport.request("GET", "/api/v1/namespaces/a/configmaps/b", [], None, {name: value}, (5, 10))
    assert server.requests == []


def test_a_path_with_a_space_or_control_character_is_refused_as_http_client_refuses_it(server: _Server) -> None:
    transport = _transport(server)
    with pytest.raises(http.client.InvalidURL):
        transport.request("GET", "/api/v1/namespaces/a/configmaps/b c", [], None, {}, (5, 10))
    assert server.requests == []


def test_a_connection_the_server_closed_while_idle_is_not_used_and_a_patch_still_goes_out_once(
        server: _Server) -> None:
    server.drop_after_answer = True
    transport = _transport(server)
    assert _get(transport, method="PATCH") == 200
    assert server.closed.acquire(timeout=10)  # the connection is idle, and closed
    assert _get(transport, method="PATCH") == 200  # a PATCH is never retried: it must not meet the dead one
    assert [r[0] for r in server.requests] == ["PATCH", "PATCH"]
    assert server.connections == 2


def test_a_patch_whose_connection_breaks_after_it_was_sent_is_not_sent_again(server: _Server) -> None:
    server.break_before_answer = 1
    transport = _transport(server)
    with pytest.raises(OSError):
        _get(transport, method="PATCH")
    assert [r[0] for r in server.requests] == ["PATCH"]


def test_a_get_whose_connection_breaks_after_it_was_sent_is_sent_again(server: _Server) -> None:
    server.break_before_answer = 2
    transport = _transport(server)
    assert _get(transport) == 200
    assert [r[0] for r in server.requests] == ["GET", "GET", "GET"]


def test_a_request_whose_answer_stops_coming_fails_after_one_read_timeout_and_is_not_sent_again(
        server: _Server) -> None:
    server.hold = True
    transport = _transport(server)
    with pytest.raises(TimeoutError):
        _get(transport, timeout=(5, 0.3))
    assert len(server.requests) == 1


def test_a_watch_whose_answer_never_starts_fails_after_one_stall_time_and_is_not_sent_again(
        server: _Server, tmp_path: Path) -> None:
    """Watches go through the `kubernetes` client (urllib3), where the client `new_api_client` makes says
    the rule (`CONNECTION_RETRIES`): with urllib3's default, a watch to a frozen API server was sent four
    times before its caller heard."""
    server.hold_watches = True
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "test", "user": {}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    cluster = Cluster(new_api_client(kubeconfig))
    with pytest.raises(ClusterError, match="watch of ConfigMap"):
        list(watch_events(cluster, WatchKey("v1", "ConfigMap", "a"), "", "1", stall_s=0.3))
    assert [path.split("?")[0] for _, path, _ in server.requests if "watch=true" in path] == [
        "/api/v1/namespaces/a/configmaps"]


def test_a_request_that_cannot_connect_raises_a_connection_error(server: _Server) -> None:
    transport = _transport(server)
    server.shutdown()
    server.server_close()
    with pytest.raises(ConnectionRefusedError):
        _get(transport)


def test_every_request_asks_the_configuration_for_its_token_so_a_refreshed_token_is_sent(server: _Server) -> None:
    configuration = k8s.Configuration()
    tokens = iter(["first", "second"])
    configuration.api_key = {"authorization": "placeholder"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.refresh_api_key_hook = lambda c: c.api_key.update(authorization=next(tokens))
    transport = _transport(server, configuration)
    _get(transport)
    _get(transport)
    assert [r[2] for r in server.requests] == ["Bearer first", "Bearer second"]


def test_the_query_is_encoded_onto_the_path(server: _Server) -> None:
    transport = _transport(server)
    transport.request("PATCH", "/api/v1/namespaces/a/configmaps/b", [("fieldManager", "m"), ("dryRun", "All")],
                      {"data": {"k": "v"}}, {}, (5, 10))
    assert server.requests[0][1] == "/api/v1/namespaces/a/configmaps/b?fieldManager=m&dryRun=All"


@pytest.mark.parametrize("setting", ["proxy", "tls_server_name"])
def test_a_configuration_it_does_not_speak_is_left_to_the_kubernetes_client(setting: str) -> None:
    configuration = k8s.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    setattr(configuration, setting, "http://127.0.0.1:3128" if setting == "proxy" else "api.example.test")
    assert transport_of(k8s.ApiClient(configuration), max_idle=8) is None


def test_every_cluster_view_of_one_client_shares_its_transport() -> None:
    configuration = k8s.Configuration()
    configuration.host = "https://127.0.0.1:6443"
    api_client = k8s.ApiClient(configuration)
    assert transport_of(api_client, max_idle=8) is transport_of(api_client, max_idle=8) is not None


def test_a_connection_idle_past_the_limit_is_closed_instead_of_used(server: _Server, monkeypatch) -> None:
    transport = _transport(server)
    _get(transport)
    clock = time.monotonic() + IDLE_LIMIT_S
    monkeypatch.setattr(time, "monotonic", lambda: clock)  # the API server would close it soon
    _get(transport)
    assert server.connections == 2


def test_connections_a_burst_opened_are_closed_once_idle_past_the_limit_while_one_stays_in_use(
        server: _Server, monkeypatch) -> None:
    transport = _transport(server)
    started, gate = threading.Barrier(4), threading.Barrier(4)
    server.hold = True

    def burst() -> None:
        started.wait(timeout=10)
        _get(transport)
        gate.wait(timeout=10)

    threads = [threading.Thread(target=burst) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.wait(timeout=10)
    while len(server.requests) < 3:  # three requests in flight, on three connections
        server.closed.acquire(timeout=0.01)
    server.release.set()
    gate.wait(timeout=10)
    assert server.connections == 3
    now = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    now[0] += IDLE_LIMIT_S / 2
    _get(transport)  # one connection goes on serving requests
    now[0] += IDLE_LIMIT_S * 0.75
    _get(transport)
    assert server.connections == 3
    assert server.closed.acquire(timeout=10) and server.closed.acquire(timeout=10)  # the other two are closed


class _ConnectProxy(ThreadingHTTPServer):
    """An HTTP proxy that only tunnels (CONNECT), counting the tunnels it opened."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels = 0


class _Tunnel(BaseHTTPRequestHandler):
    server: _ConnectProxy

    def log_message(self, *args: object) -> None:
        pass

    def do_CONNECT(self) -> None:
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.server.tunnels += 1
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True


def test_a_kubeconfig_with_a_proxy_is_served_by_the_kubernetes_clients_own_path(kubeconfig: Path,
                                                                                namespace: str) -> None:
    proxy = _ConnectProxy()
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        configuration.proxy = f"http://127.0.0.1:{proxy.server_address[1]}"
        cluster = Cluster(k8s.ApiClient(configuration))
        assert transport_of(cluster.api_client, max_idle=8) is None
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "proxied", "namespace": namespace},
                       "data": {"through": "the proxy"}})
        assert cluster.get("v1", "ConfigMap", namespace, "proxied")["data"] == {"through": "the proxy"}
        assert cluster.get("v1", "ConfigMap", namespace, "absent") is None  # an error answer, read as the API's
        with pytest.raises(ApiError) as rejected:
            cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "Bad_Name", "namespace": namespace}})
        assert rejected.value.status == 422
        assert proxy.tunnels >= 1
    finally:
        proxy.shutdown()
        proxy.server_close()
