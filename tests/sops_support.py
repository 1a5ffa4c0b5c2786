"""Real keys and real `sops` encryption for tests: an age identity or a GnuPG key made in the test."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SECRET_FIELDS = "^(data|stringData)$"


@dataclass(frozen=True)
class AgeKey:
    identity: str  # AGE-SECRET-KEY-...
    recipient: str  # age1...


def age_key(folder: Path) -> AgeKey:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"key-{len(list(folder.iterdir()))}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True, timeout=30)
    lines = path.read_text().splitlines()
    recipient = next(line.split(": ", 1)[1] for line in lines if line.startswith("# public key:"))
    identity = next(line for line in lines if line.startswith("AGE-SECRET-KEY-"))
    path.unlink()
    return AgeKey(identity, recipient)


@dataclass(frozen=True)
class PgpKey:
    fingerprint: str
    armored_secret: str
    home: Path


def pgp_key(home: Path) -> PgpKey:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Test Deployer <deploy@example.test>",
                    "default", "default", "never"], check=True, capture_output=True, env=env, timeout=120)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], check=True,
                             capture_output=True, text=True, env=env).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    armored = subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys", fingerprint], check=True,
                             capture_output=True, text=True, env=env).stdout
    stop_agent(home)
    return PgpKey(fingerprint, armored, home)


def stop_agent(home: Path) -> None:
    """gpg leaves an agent running for its home folder; a test leaves nothing running."""
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)},
                   capture_output=True, timeout=30, check=False)


def encrypt_file(path: Path, age: AgeKey | None = None, pgp: PgpKey | None = None) -> None:
    """Encrypt a manifest in place with the real sops, values of data/stringData only (as Flux documents)."""
    command = ["sops", "encrypt", "--in-place", "--encrypted-regex", SECRET_FIELDS]
    env = dict(os.environ)
    if age:
        command += ["--age", age.recipient]
    if pgp:
        command += ["--pgp", pgp.fingerprint]
        env["GNUPGHOME"] = str(pgp.home)
    # from the file's folder: sops looks for a .sops.yaml upwards from where it runs (not this repository's)
    subprocess.run([*command, str(path)], check=True, capture_output=True, env=env, timeout=60, cwd=path.parent)
    if pgp:
        stop_agent(pgp.home)


def secret(name: str, namespace: str | None, **string_data: str) -> dict:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "stringData": string_data}
