"""A real local Kubernetes control plane for tests and the demo, built from pinned Go modules.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes) run as plain
processes on 127.0.0.1; no Docker, no release downloads. `python -m devcluster up|down|status|build`.
"""
