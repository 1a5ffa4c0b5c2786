"""daemon: the long-running service (scheduler and workers, HTTP API and status page, webhooks, alerts,
leader election, metrics). May import pipeline, policy, kube and the shared modules; never cli."""
