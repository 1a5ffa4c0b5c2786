"""Fault tests: break one thing in the middle of real work and assert the end state."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from kubernetes import config

from reconciler.kube.cluster import new_api_client
from tcpproxy import TcpProxy


@pytest.fixture()
def proxy(kubeconfig: Path) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the session's API server."""
    host = urlsplit(config.new_client_from_config(config_file=str(kubeconfig)).configuration.host)
    proxy = TcpProxy((host.hostname, host.port))
    yield proxy
    proxy.close()


@pytest.fixture()
def proxied_client(kubeconfig: Path, proxy: TcpProxy):
    """An API client, made as the reconciler makes its own, that reaches the API server only through the proxy."""
    api_client = new_api_client(kubeconfig)
    api_client.configuration.host = f"https://127.0.0.1:{proxy.port}"
    return api_client


@pytest.fixture()
def silent_host() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word (a hung host)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()
