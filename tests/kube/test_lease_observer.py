"""client-go's expiry rule on plain Lease records and an injected monotonic clock (no cluster)."""

from __future__ import annotations

from reconciler.kube.lease import LeaseObserver


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease(holder: str, renew: str, duration: int = 15) -> dict:
    return {"metadata": {"namespace": "ns", "name": "writer-prod", "resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renew,
                     "acquireTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 0}}


def test_a_lease_first_seen_is_held_for_a_full_duration_whatever_its_renew_time_says() -> None:
    clock = Clock()
    observer = LeaseObserver(clock)
    ancient = lease("steady", "1999-01-01T00:00:00.000000Z")

    assert observer.held_by(ancient, "me") == "steady"
    clock.now += 14.9
    assert observer.held_by(ancient, "me") == "steady"
    clock.now += 0.2
    assert observer.held_by(ancient, "me") == ""


def test_each_renewal_seen_starts_the_duration_again() -> None:
    clock = Clock()
    observer = LeaseObserver(clock)
    observer.held_by(lease("steady", "t1"), "me")
    clock.now += 10
    observer.held_by(lease("steady", "t2"), "me")
    clock.now += 10

    assert observer.held_by(lease("steady", "t2"), "me") == "steady"


def test_a_released_lease_is_free_at_once_and_our_own_is_never_held_against_us() -> None:
    observer = LeaseObserver(Clock())

    assert observer.held_by(lease("", "t1"), "me") == ""
    assert observer.held_by(lease("me", "t1"), "me") == ""


def test_a_new_resource_version_alone_is_not_a_renewal() -> None:
    clock = Clock()
    observer = LeaseObserver(clock)
    first = lease("steady", "t1")
    observer.held_by(first, "me")
    clock.now += 16
    annotated = {**first, "metadata": {**first["metadata"], "resourceVersion": "2", "annotations": {"a": "b"}}}

    assert observer.held_by(annotated, "me") == ""
