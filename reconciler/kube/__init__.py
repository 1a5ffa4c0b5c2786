"""kube: everything that talks to the Kubernetes API (REST client with request counts, readiness per kind).
May import only the shared modules (config, results, errors, logs, objects, graph)."""
