"""Typed errors a user can cause or meet. Each carries enough to act on: what, where, and the fix.

The CLI turns any `ReconcilerError` into one line on stderr and exit code 2, so messages are
written to be read on their own.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the reconciler reports to a user instead of a traceback."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(ReconcilerError):
    """An environments/*.yaml or policies/*.yaml file is invalid."""


class SourceError(ReconcilerError):
    """Git could not be reached, or a revision could not be resolved or read."""


class CacheError(ReconcilerError):
    """The cache folder (Git mirror, exported trees) cannot be written: a full disk, a read-only folder."""


class RenderError(ReconcilerError):
    """kustomize failed, or its output is not valid Kubernetes YAML."""


class ManifestError(ReconcilerError):
    """A rendered document is not a valid Kubernetes object (missing kind, name, ...)."""


class ClusterError(ReconcilerError):
    """The Kubernetes API could not be reached or refused a request."""
