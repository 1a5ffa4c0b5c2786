"""HealthFlow GitOps reconciler: keeps Kubernetes clusters equal to a Git repository of kustomize stacks."""

__version__ = "0.1.0"
