"""pipeline: one reconcile pass, source -> render -> policy -> plan -> apply -> health -> prune -> record.
May import policy, kube and the shared modules; never daemon or cli."""
