"""Fault tests: break one thing in the middle of real work and assert the end state."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from kubernetes import config

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
    """An API client that reaches the API server only through the proxy."""
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    api_client.configuration.host = f"https://127.0.0.1:{proxy.port}"
    return api_client
