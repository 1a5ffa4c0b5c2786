"""Object ids (plain data): the inventory's keys and most of a pass's map keys."""

from __future__ import annotations

import pickle

from reconciler.objects import ObjectId


def test_an_id_read_back_from_its_text_is_the_same_key() -> None:
    deployment = ObjectId("apps", "Deployment", "web", "api")

    again = ObjectId.parse(str(deployment))

    assert again == deployment and hash(again) == hash(deployment) and {deployment: 1}[again] == 1
    assert str(ObjectId("", "Namespace", "", "web")) == "core/Namespace/-/web"


def test_an_id_carries_no_hash_to_another_process() -> None:
    """A string's hash is salted per process: a hash kept from this one would be wrong in the next."""
    deployment = ObjectId("apps", "Deployment", "web", "api")
    hash(deployment)

    state = pickle.loads(pickle.dumps(deployment)).__dict__

    assert state == {"group": "apps", "kind": "Deployment", "namespace": "web", "name": "api"}
