"""SOPS-encrypted Secrets in Git, decrypted in memory after the render (Flux's `decryption.provider: sops`).

kustomize renders an encrypted Secret as it is in Git: its values are `ENC[AES256_GCM,...]` strings and
a top-level `sops` block carries the keys and the MAC. Decrypting the rendered object would break the
MAC as soon as kustomize adds a namespace or a label, so the repository file is decrypted instead, by
the real `sops` (its MAC checked), and each rendered `ENC[...]` string is replaced by the plaintext at
the same place in that file: whatever kustomize did to names, labels or namespaces, the values are the
ones encrypted in Git. The render cache and the Git mirror only ever hold the encrypted text; the
plaintext lives in the rendered objects in memory, goes to the API server in the apply, and is masked
(as every Secret value is) in plan, drift, preview, render, the status page and the API. sops reads its
keys from its environment (`SOPS_AGE_KEY`) and a GnuPG home that exists only while it runs; its own
default key locations are not consulted.

Only Secrets may be encrypted: their values are masked everywhere, so a plaintext never reaches a
terminal or a page. A file that cannot be decrypted fails its stack with the file and the reason, and
nothing of the stack is applied or pruned.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from reconciler.config import DecryptionConfig, EnvironmentConfig
from reconciler.errors import RenderError
from reconciler.kube.cluster import Cluster
from reconciler.objects import K8sObject
from reconciler.pipeline.render_inputs import input_paths

SOPS_TIMEOUT_S = 60.0
SOPS_PARALLEL = 4
"""Encrypted files decrypted at once (each is a sops process, mostly waiting on its own start-up)."""
_SOPS_AES = "ENC[AES256_GCM,"
_CIPHER = "ENC["  # every sops ciphertext starts so; a damaged one must never be applied as a value
_SUFFIXES = (".yaml", ".yml", ".json")


def is_encrypted(manifest: dict) -> bool:
    """A `sops` block, even a damaged one: such an object is decrypted or its stack fails."""
    return "sops" in manifest


@dataclass(frozen=True)
class SopsKeys:
    """Private keys, in memory: age identities and armored OpenPGP secret keys."""

    age: tuple[str, ...] = ()
    pgp: tuple[str, ...] = ()

    @classmethod
    def from_entries(cls, entries: dict[str, str]) -> "SopsKeys":
        """Flux's convention for the Secret's keys: `*.agekey` holds age identities, `*.asc` a PGP key.
        A key file (no names) is read by its content."""
        age, pgp = [], []
        for name, text in sorted(entries.items()):
            if name.endswith(".asc") or "BEGIN PGP PRIVATE KEY BLOCK" in text:
                pgp.append(text)
            elif name.endswith(".agekey") or "AGE-SECRET-KEY-" in text:
                age.append(text)
        return cls(tuple(age), tuple(pgp))


class Decryptor:
    """Decrypts the encrypted Secrets of a stack's render, reading keys once and only when needed."""

    def __init__(self, config: DecryptionConfig | None, read_keys: Callable[[], SopsKeys], where: str) -> None:
        self.config = config
        self._read_keys = read_keys
        self._keys: SopsKeys | None = None
        self.where = where  # the environment file, for errors

    def objects(self, tree_root: Path, stack: str, objects: list[K8sObject], stack_path: str = "") -> list[K8sObject]:
        """The stack's objects with every encrypted Secret decrypted; RenderError naming the file otherwise.
        The encrypted files are looked for where kustomize read the stack (`render_inputs`), else everywhere."""
        encrypted = [o for o in objects if is_encrypted(o.manifest)]
        self._refuse_stray_ciphertexts(stack, [o for o in objects if not is_encrypted(o.manifest)])
        if not encrypted:
            return objects
        self._refuse_other_kinds(stack, encrypted)
        if self.config is None:
            raise RenderError(f"stack {stack!r}: {encrypted[0].id} is SOPS-encrypted but {self.where} has no "
                              "`decryption` section",
                              fix="add `decryption: {provider: sops, secretRef: {name: ..., namespace: ...}}` "
                                  "(or `keyFile:`) to the environment file")
        wanted = {value for obj in encrypted for value in _ciphertexts(obj.manifest)}
        plaintexts = self._plaintexts(tree_root, stack, wanted, (input_paths(tree_root, stack_path) if stack_path
                                                                   else None) or [""])
        return [K8sObject(_replaced(o.manifest, plaintexts, stack, o), o.stack, o.source_file)
                if is_encrypted(o.manifest) else o for o in objects]

    def _refuse_stray_ciphertexts(self, stack: str, plain: list[K8sObject]) -> None:
        """A sops ciphertext in an object without its `sops` block (lost in an edit or a merge) would be
        applied as the value itself."""
        for obj in plain:
            if obj.kind == "Secret" and any(v.startswith(_SOPS_AES) for v in _ciphertexts(obj.manifest)):
                raise RenderError(f"stack {stack!r}: {obj.id} ({obj.source_file or '?'}) holds SOPS-encrypted values "
                                  "but no `sops` block", fix="restore the file as sops wrote it (sops encrypt)")

    def _refuse_other_kinds(self, stack: str, encrypted: list[K8sObject]) -> None:
        others = [o for o in encrypted if o.kind != "Secret"]
        if others:
            raise RenderError(f"stack {stack!r}: {others[0].id} ({others[0].source_file or '?'}) is SOPS-encrypted "
                              "but is not a Secret",
                              fix="keep sensitive values in Secrets (masked everywhere) and encrypt only those")

    def _plaintexts(self, tree_root: Path, stack: str, wanted: set[str], roots: list[str]) -> dict[str, Any]:
        """ENC string -> plaintext, from every encrypted repository file below `roots` holding one of
        `wanted` (the files decrypted at once: each is a sops process)."""
        files = sorted({path for root in roots for path in _encrypted_files(tree_root / root, wanted)})
        if self._keys is None and files:
            self._keys = self._read_keys()
        found: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=SOPS_PARALLEL, thread_name_prefix="sops") as pool:
            for pairs in pool.map(lambda path: self._decrypt_file(tree_root, stack, path), files):
                found.update(pairs)
        return found

    def _decrypt_file(self, tree_root: Path, stack: str, path: Path) -> dict[str, Any]:
        relative = path.relative_to(tree_root).as_posix()
        kind = "json" if path.suffix == ".json" else "yaml"
        with sops_environment(self._keys or SopsKeys()) as env:
            try:
                done = subprocess.run([sops_binary(), "decrypt", "--input-type", kind, "--output-type", kind,
                                       str(path)], capture_output=True, text=True, timeout=SOPS_TIMEOUT_S, env=env)
            except subprocess.TimeoutExpired:
                raise RenderError(f"stack {stack!r}: sops did not decrypt {relative} within {SOPS_TIMEOUT_S:.0f}s",
                                  fix="check that the keys are local (no key service)") from None
        if done.returncode != 0:
            raise RenderError(f"stack {stack!r}: cannot decrypt {relative}: {_reason(done.stderr)}",
                              fix="encrypt it for a key the environment's `decryption` holds, or restore the file")
        return _pairs(_documents(path.read_text(), kind), _documents(done.stdout, kind))


def sops_binary() -> str:
    binary = os.environ.get("RECONCILER_SOPS") or shutil.which("sops")
    if not binary:
        raise RenderError("an encrypted Secret needs `sops`, which is not installed",
                          fix="run `make build` (installs the pinned sops) or put sops on PATH")
    return binary


def _reason(stderr: str) -> str:
    text = " ".join(stderr.split())
    if "MAC mismatch" in text:
        return "its MAC does not match (the file was changed after it was encrypted)"
    if "Failed to get the data key" in text or "no master key was able to decrypt" in text:
        return "none of the environment's keys can decrypt it (encrypted for another key)"
    return text[:300] or "sops failed"


def decryptor_for(env: EnvironmentConfig, env_file: str, cluster: Callable[[], Cluster]) -> Decryptor:
    """The decryptor of an environment in force (its `decryption` is always the local file's)."""
    return Decryptor(env.decryption, key_reader(env.decryption, env_file, cluster), env_file)


def key_reader(config: DecryptionConfig | None, env_file: str, cluster: Callable[[], Cluster]) -> Callable[[], SopsKeys]:
    """How to read the keys `decryption` names (called only when a stack has an encrypted Secret)."""

    def read() -> SopsKeys:
        if config is None:
            return SopsKeys()
        if config.key_file:
            path = Path(config.key_file)
            path = path if path.is_absolute() else Path(env_file).resolve().parent / path
            try:
                return SopsKeys.from_entries({path.name: path.read_text()})
            except OSError as exc:
                raise RenderError(f"{env_file}: decryption.keyFile {path}: {exc.strerror}",
                                  fix="point keyFile at a file of age identities or armored PGP secret keys") from exc
        ref = config.secret_ref
        secret = cluster().get("v1", "Secret", ref.namespace, ref.name)
        if secret is None:
            raise RenderError(f"{env_file}: decryption.secretRef: Secret {ref.namespace}/{ref.name} not found",
                              fix=f"kubectl -n {ref.namespace} create secret generic {ref.name} "
                                  "--from-file=identity.agekey=<age key file>")
        return SopsKeys.from_entries({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})

    return read


@contextlib.contextmanager
def sops_environment(keys: SopsKeys) -> Iterator[dict[str, str]]:
    """sops' environment: age identities in a variable; PGP keys in a GnuPG home made for this call and
    removed after it; HOME empty, so no key of the machine's user is ever tried."""
    with tempfile.TemporaryDirectory(prefix="reconciler-sops-") as home:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home, "SOPS_AGE_KEY": "\n".join(keys.age)}
        if keys.pgp:
            gnupg = Path(home) / "gnupg"
            gnupg.mkdir(mode=0o700)
            env["GNUPGHOME"] = str(gnupg)
            for armored in keys.pgp:
                subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=armored, text=True, env=env,
                               capture_output=True, timeout=SOPS_TIMEOUT_S, check=False)
        try:
            yield env
        finally:
            if keys.pgp:  # the agent holds the imported keys: stop it before its folder goes
                subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=10,
                               check=False)


def _encrypted_files(root: Path, wanted: set[str]) -> Iterator[Path]:
    """Files at or below `root` that hold one of the wanted ciphertexts (a prefix is enough to find them)."""
    prefixes = {value[:64] for value in wanted if len(value) > len(_CIPHER)}
    for path in _files_below(root):
        if path.name.endswith(_SUFFIXES):
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError):
                continue
            if "sops" in text and any(prefix in text for prefix in prefixes):
                yield path


def _files_below(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        yield from (Path(folder) / name for name in files)


def _documents(text: str, kind: str) -> list[Any]:
    if kind == "json":
        return [json.loads(text)]
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _pairs(encrypted: list[Any], decrypted: list[Any]) -> dict[str, Any]:
    """Each ciphertext of the encrypted file and the plaintext at the same place in its decryption."""
    found: dict[str, Any] = {}

    def walk(cipher: Any, plain: Any) -> None:
        if isinstance(cipher, dict) and isinstance(plain, dict):
            for key, value in cipher.items():
                if key != "sops" and key in plain:
                    walk(value, plain[key])
        elif isinstance(cipher, list) and isinstance(plain, list):
            for left, right in zip(cipher, plain):
                walk(left, right)
        elif isinstance(cipher, str) and cipher.startswith(_CIPHER):
            found[cipher] = plain

    for cipher_doc, plain_doc in zip(encrypted, decrypted):
        walk(cipher_doc, plain_doc)
    return found


def _ciphertexts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "sops":
                yield from _ciphertexts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _ciphertexts(item)
    elif isinstance(value, str) and value.startswith(_CIPHER):
        yield value


def _replaced(manifest: dict, plaintexts: dict[str, Any], stack: str, obj: K8sObject) -> dict:
    """The manifest without its `sops` block and with every ciphertext replaced by its plaintext."""

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str) and value.startswith(_CIPHER):
            if value not in plaintexts:
                raise RenderError(f"stack {stack!r}: {obj.id}: an encrypted value was not found in any "
                                  "SOPS-encrypted file of the repository",
                                  fix="keep encrypted Secrets as files in the repository (not generated or remote)")
            return plaintexts[value]
        return value

    return swap({k: v for k, v in manifest.items() if k != "sops"})
