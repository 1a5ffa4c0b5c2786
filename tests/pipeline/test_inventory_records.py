"""How a stack's record is stored in the inventory ConfigMap (plain data: no cluster needed)."""

from __future__ import annotations

import hashlib
import json

from reconciler.pipeline.inventory import COMPRESS_OVER_BYTES, StackRecord, _parse_record, encode_record


def _record(objects: int) -> StackRecord:
    return StackRecord(commit="a" * 40, state="applied", healthy=True,
                       objects={f"core/ConfigMap/bench-s{i % 5}/o{i}": _hash(i) for i in range(objects)})


def _hash(i: int) -> str:
    """As random as the real keyed hashes (which compress far less than the ids beside them)."""
    return hashlib.sha256(str(i).encode()).hexdigest()[:16]


def test_a_small_record_is_stored_as_readable_json() -> None:
    stored = encode_record(_record(10))

    assert json.loads(stored)["objects"]["core/ConfigMap/bench-s0/o0"] == _hash(0)
    assert _parse_record(stored) == _record(10)


def test_a_large_record_is_compressed_and_reads_back_the_same() -> None:
    stored = encode_record(_record(10_000))

    assert "objects_zlib" in json.loads(stored)
    assert _parse_record(stored) == _record(10_000)


def test_ten_thousand_objects_fit_the_configmap_limit_with_room_to_spare() -> None:
    stored = encode_record(_record(10_000))

    assert len(json.dumps(_record(10_000).__dict__)) > 512 * 1024  # uncompressed it would take half the limit
    assert len(stored) < 300 * 1024


def test_the_compression_threshold_keeps_ordinary_stacks_readable() -> None:
    assert "objects_zlib" not in json.loads(encode_record(_record(COMPRESS_OVER_BYTES // 80)))


def test_a_corrupted_compressed_record_reads_as_missing() -> None:
    stored = json.loads(encode_record(_record(10_000)))
    stored["objects_zlib"] = stored["objects_zlib"][:100]

    assert _parse_record(json.dumps(stored)) is None


def test_a_stacks_record_is_parsed_once_per_value_read_never_after_a_save_and_each_caller_gets_a_copy_to_change(monkeypatch) -> None:
    from reconciler.pipeline import inventory as module

    parsed: list[str] = []
    monkeypatch.setattr(module, "_parse_record", lambda raw: parsed.append(raw) or _parse_record(raw))
    inventory = module.Inventory(cluster=None, env="e")
    inventory.save_record("app", _record(3), wait=True)  # kept for the next write: no cluster asked

    changed = inventory.record("app")
    changed.objects["core/ConfigMap/x/y"] = "h"
    changed.history.append({"commit": "b" * 40})

    assert inventory.record("app") == _record(3) and parsed == []  # as saved: nothing to parse
    inventory._data["stack.app.json"] = encode_record(_record(4))  # as a load reads it
    assert inventory.record("app") == _record(4) and inventory.record("app") == _record(4) and len(parsed) == 1


def test_a_record_the_next_passs_inventory_reads_unchanged_is_not_parsed_again(monkeypatch) -> None:
    from reconciler.pipeline import inventory as module

    parsed: list[str] = []
    monkeypatch.setattr(module, "_parse_record", lambda raw: parsed.append(raw) or _parse_record(raw))
    shared: dict = {}  # what an engine keeps for its environment's inventories
    for _ in range(2):  # two passes, each reading the ConfigMap anew
        inventory = module.Inventory(cluster=None, env="e", parsed=shared)
        inventory._data["stack.app.json"] = encode_record(_record(3))  # as its load reads it

        assert inventory.record("app") == _record(3)

    assert len(parsed) == 1
