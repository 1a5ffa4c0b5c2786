"""What each stack applied, and the reconciler's memory, kept in the cluster.

One ConfigMap per environment, `reconciler-<env>` in `healthflow-system`: per stack the commit
last applied, the identities it owns with the hash of what Git wanted for each (a changed hash is
a Git change; an unchanged hash with a live difference is drift), the last result; and the time
each drifted object was first seen. A restarted reconciler reads it back and loses nothing.
Stacks write their own keys with JSON merge patches, so parallel stacks never overwrite each other.

A stack's record that adds no object to what the stack owns may wait (`RECORD_DELAY_S`) and go out
with the next write, at the latest when the pass ends: a push that moves every stack of an
environment to a new commit then writes the ConfigMap about once a pass, not once a stack (it was a
quarter of the push's requests, and the largest). What waits is never ownership: a record naming a
new object is written at once. A pass killed before a waiting record is written loses only that
record; the next pass finds the stack's objects already as Git wants them, applies them again (a
no-op for the server) and records the stack as applied at that commit.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from dataclasses import dataclass, field, replace

from reconciler.kube.cluster import ApiError, Cluster, ensure_namespace
from reconciler.objects import ObjectId
from reconciler.pipeline.pins import Pins, parse_pins
from reconciler.pipeline.suspension import Suspensions, parse_suspensions
from reconciler.pipeline.hashkey import read_hash_key
from reconciler.pipeline.ownership import MANAGED_BY, MANAGED_BY_LABEL
from reconciler.results import utcnow

SYSTEM_NAMESPACE = "healthflow-system"
_DRIFT_KEY = "drift.json"
_PINS_KEY = "pins.json"
_SUSPENDED_KEY = "suspended.json"
_RECORD_PREFIX, _RECORD_SUFFIX = "stack.", ".json"
RECORD_DELAY_S = 10.0
"""How long a record that adds no owned object may wait for the next write (see the module docstring)."""


def _record_key(stack: str) -> str:
    """The ConfigMap key of a stack's record."""
    return f"{_RECORD_PREFIX}{stack}{_RECORD_SUFFIX}"


@dataclass
class StackRecord:
    commit: str | None = None
    objects: dict[str, str] = field(default_factory=dict)  # str(ObjectId) -> desired hash
    state: str | None = None
    reason: str = ""
    healthy: bool | None = None
    violations: int = 0
    drift_count: int = 0
    last_run: str | None = None
    applied_at: str | None = None
    history: list[dict] = field(default_factory=list)  # newest first: see history.py

    def ids(self) -> list[ObjectId]:
        return [ObjectId.parse(i) for i in self.objects]


class InventoryEntries:
    """The environment's ConfigMap as keys and values: read once per pass, created when missing, and written
    as merge patches of only the keys changed here, so that parallel stacks never overwrite each other."""

    def __init__(self, cluster: Cluster, env: str) -> None:
        self.cluster = cluster
        self.env = env
        self.name = f"reconciler-{env}"
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}
        self._unsaved: set[str] = set()  # keys changed here and not yet written
        self._written_at = time.monotonic()
        self.found = False  # the ConfigMap existed when loaded

    def load(self, create: bool = True) -> None:
        live = self.cluster.get("v1", "ConfigMap", SYSTEM_NAMESPACE, self.name)
        self.found = live is not None
        if live is None and create:
            ensure_namespace(self.cluster, SYSTEM_NAMESPACE)
            live = self._create()
        with self._lock:
            self._data = dict((live or {}).get("data") or {})

    def _create(self) -> dict:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": self.name, "namespace": SYSTEM_NAMESPACE,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY, "reconciler.healthflow.io/env": self.env}},
                "data": {}}
        try:
            return self.cluster.create(body)
        except ApiError as exc:
            if exc.status == 409:
                return self.cluster.get("v1", "ConfigMap", SYSTEM_NAMESPACE, self.name) or body
            raise

    def flush(self) -> None:
        """Write every key changed here and not yet written, in one merge patch (a key removed is removed)."""
        with self._lock:
            keys = sorted(self._unsaved)
            self._unsaved.clear()
            patch = {key: self._data.get(key) for key in keys}
        if not patch:
            return
        try:
            self.cluster.merge_patch("v1", "ConfigMap", SYSTEM_NAMESPACE, self.name, {"data": patch})
        except Exception:
            with self._lock:
                self._unsaved.update(key for key in keys if key not in self._unsaved)
            raise
        self._written_at = time.monotonic()

    def _save_entry(self, key: str, value: str | None, absent: str | None = None) -> None:
        """One key of the ConfigMap, written only when it changes (None removes it; `absent` is what a
        missing key stands for)."""
        with self._lock:
            if self._data.get(key, absent) == value:
                return
            if value is None:
                self._data.pop(key, None)
            else:
                self._data[key] = value
            self._unsaved.add(key)
        self.flush()

    def _entry(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def pins(self) -> Pins:
        return parse_pins(self._entry(_PINS_KEY))

    def save_pins(self, pins: Pins) -> None:
        """Write (or, with no pinned stack left, remove) the environment's pins."""
        self._save_entry(_PINS_KEY, pins.to_json() if pins else None)

    def suspensions(self) -> Suspensions:
        return parse_suspensions(self._entry(_SUSPENDED_KEY))

    def save_suspensions(self, suspensions: Suspensions) -> None:
        """Write (or, with nothing suspended, remove) the environment's suspensions."""
        self._save_entry(_SUSPENDED_KEY, suspensions.to_json() if suspensions else None)

    def drift_first_seen(self) -> dict[str, str]:
        try:
            value = json.loads(self._entry(_DRIFT_KEY) or "{}")
        except ValueError:
            return {}  # corrupted by hand: drift is timed again from now
        return value if isinstance(value, dict) else {}

    def save_drift_first_seen(self, first_seen: dict[str, str]) -> None:
        self._save_entry(_DRIFT_KEY, json.dumps(first_seen, sort_keys=True), absent="{}")


class Inventory(InventoryEntries):
    """The env's ConfigMap with its stacks' records: what each stack applied and owns (`StackRecord`), written
    per stack or several stacks at once."""

    def __init__(self, cluster: Cluster, env: str,
                 parsed: dict[str, tuple[str | None, StackRecord | None]] | None = None) -> None:
        """`parsed`: records parsed by earlier inventories of the environment, by key with the value they were
        parsed from (shared and added to: a record read again unchanged is not parsed again)."""
        super().__init__(cluster, env)
        self._parsed = parsed if parsed is not None else {}  # key -> (stored value, its record)
        self.recovered: dict[str, int] = {}  # stack -> objects its record was rebuilt with, this pass
        self.key_found = False  # the hash-key Secret existed when read
        self.key_lost = False  # it did not, though records held hashes made with it: they were forgotten

    def hash_key(self, create: bool) -> bytes:
        """The environment's key for the hashes stored here (`pipeline.hashkey`); notes whether it existed.
        A key gone while records hold hashes made with it (its Secret deleted by hand): those hashes cannot
        be checked any more, and compared under a new key every live difference looked like a Git change,
        so detect-only drift was reverted. They are taken as unknown instead, as after a rebuild (a live
        difference is drift), and written so (`create`) until each stack's pass records new ones."""
        key, self.key_found = read_hash_key(self.cluster, SYSTEM_NAMESPACE, self.env, create)
        if not self.key_found and self.found:
            self.key_lost = self._forget_hashes(save=create)
        return key

    def _forget_hashes(self, save: bool) -> bool:
        """Every recorded hash made unknown (''), and written when `save`; whether there was any."""
        records = {stack: self.record(stack) for stack in self.recorded_stacks()}
        forgotten = {_record_key(stack): encode_record(replace(record, objects=dict.fromkeys(record.objects, "")))
                     for stack, record in records.items() if any(record.objects.values())}
        with self._lock:
            self._data.update(forgotten)
            self._unsaved.update(forgotten if save else ())
        self.flush()
        return bool(forgotten)

    def record(self, stack: str) -> StackRecord:
        """The stack's record, a copy of its own to change."""
        record = self._stored(_record_key(stack))
        return _copy(record) if record is not None else StackRecord()

    def _stored(self, key: str) -> StackRecord | None:
        """The record stored under `key` (shared: never changed), parsed once per value read (a value saved
        here is kept as saved): a pass asks for each stack's record about four times (recovery, plan,
        record, drift check), and parsing them every time was about 3% of a fleet replica's CPU in a push."""
        with self._lock:
            raw = self._data.get(key)
            known = self._parsed.get(key)
        if known is None or known[0] != raw:
            known = (raw, _parse_record(raw))
            with self._lock:
                self._parsed[key] = known
        return known[1]

    def has_record(self, stack: str) -> bool:
        """Whether the stack has a readable record (`pipeline.recovery` rebuilds the others)."""
        return self._stored(_record_key(stack)) is not None

    def adopt_rebuilt(self, found: dict[str, dict[str, str]]) -> dict[str, int]:
        """Records rebuilt from owner labels (`pipeline.recovery`), kept in memory until their stacks' passes
        write them; {stack: objects} for those that found any, also kept as `recovered` for the pass to say."""
        with self._lock:
            for stack, objects in found.items():
                if objects:
                    self._data[_record_key(stack)] = encode_record(StackRecord(objects=objects))
        self.recovered = {stack: len(objects) for stack, objects in found.items() if objects}
        return self.recovered

    def save_record(self, stack: str, record: StackRecord, wait: bool = False) -> None:
        """Write the stack's record; with `wait`, keep it for the next write unless `RECORD_DELAY_S` passed
        since the last one (`flush` writes what waits)."""
        key = _record_key(stack)
        value = encode_record(record)
        with self._lock:
            if self._data.get(key) == value:
                return
            self._data[key] = value
            self._parsed[key] = (value, _copy(record))
            self._unsaved.add(key)
            if wait and time.monotonic() - self._written_at < RECORD_DELAY_S:
                return
        self.flush()

    def recorded_stacks(self) -> list[str]:
        """Every stack with a record, declared in the environment or not (a removed stack keeps its record)."""
        with self._lock:
            keys = list(self._data)
        return sorted(k[len(_RECORD_PREFIX):-len(_RECORD_SUFFIX)] for k in keys
                      if k.startswith(_RECORD_PREFIX) and k.endswith(_RECORD_SUFFIX))

    def drop_record(self, stack: str) -> None:
        key = _record_key(stack)
        with self._lock:
            if self._data.pop(key, None) is None:
                return
            self._unsaved.add(key)
        self.flush()


COMPRESS_OVER_BYTES = 32 * 1024
"""A stack's object map larger than this is stored zlib-compressed (base64): one ConfigMap holds every
stack of an environment and may not exceed 1 MiB. About 53 bytes an object as JSON, about 18
compressed (the keyed hashes hardly compress, the ids do): 10,000 objects take about 180 KB instead
of 530 KB, so an environment reaches the limit at about 55,000 objects. Smaller maps stay readable."""


def encode_record(record: StackRecord) -> str:
    data = dict(record.__dict__)
    objects = json.dumps(record.objects, sort_keys=True, separators=(",", ":"))
    if len(objects) > COMPRESS_OVER_BYTES:
        data["objects"] = {}
        data["objects_zlib"] = base64.b64encode(zlib.compress(objects.encode(), 9)).decode()
    return json.dumps(data, sort_keys=True)


def _copy(record: StackRecord) -> StackRecord:
    """A record whose object map and history may be changed without changing `record`'s."""
    return replace(record, objects=dict(record.objects), history=list(record.history))


def _parse_record(raw: str | None) -> StackRecord | None:
    """A stored record, or None when there is none or it is unreadable (edited by hand, truncated)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        if "objects_zlib" in data:
            data["objects"] = json.loads(zlib.decompress(base64.b64decode(data["objects_zlib"])))
        record = StackRecord(**{k: v for k, v in data.items() if k in StackRecord.__dataclass_fields__})
        if not isinstance(record.objects, dict):
            return None
        if not isinstance(record.history, list):
            record.history = []
        record.ids()  # every id must parse
        return record
    except (ValueError, TypeError, AttributeError, zlib.error):
        return None


def now_iso() -> str:
    return utcnow().isoformat()
