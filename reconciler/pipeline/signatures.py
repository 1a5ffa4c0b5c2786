"""Signed commits, as Flux's `verify`: a head commit not signed by a trusted key is never rendered.

The trusted keys are a folder of public keys: OpenPGP keys (`*.asc`, `*.gpg`) are imported into a
keyring of their own, SSH keys (`*.pub`) become an allowed-signers file; then `git verify-commit`
checks the commit's signature against exactly those, whichever kind it is. Nothing of the user's
own GnuPG or SSH set-up is read.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from reconciler.errors import SourceError
from reconciler.kube.cluster import Cluster

_TIMEOUT_S = 30


def keys_folder(keys: str, env_file: str, cluster: Callable[[], Cluster], cache_dir: Path) -> Path:
    """`source.verify.keys` as a folder: a path (relative to the environment file's folder unless absolute),
    or `secret:<namespace>/<name>`, whose data entries are written to a folder in the cache."""
    if keys.startswith("secret:"):
        return secret_keys_folder(cluster(), keys.removeprefix("secret:"), cache_dir / "trusted-keys")
    folder = Path(keys)
    return folder if folder.is_absolute() else Path(env_file).resolve().parent / folder


def secret_keys_folder(cluster: Cluster, ref: str, folder: Path) -> Path:
    """The data entries of the Secret `<namespace>/<name>` (e.g. `alice.asc`, `ci.pub`) as files in `folder`."""
    namespace, _, name = ref.partition("/")
    secret = cluster.get("v1", "Secret", namespace, name)
    if secret is None:
        raise SourceError(f"source.verify.keys: Secret {ref} not found",
                          fix="create it with one entry per public key file (kubectl create secret generic "
                              "--from-file=alice.asc --from-file=ci.pub)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for entry, value in (secret.get("data") or {}).items():
        (folder / Path(entry).name).write_bytes(base64.b64decode(value))
    return folder


def trusted_keys(folder: Path) -> tuple[list[Path], list[Path]]:
    """(OpenPGP key files, SSH public key files) in `folder`."""
    if not folder.is_dir():
        raise SourceError(f"source.verify.keys: {folder} is not a folder",
                          fix="point source.verify.keys at a folder of *.asc / *.gpg / *.pub public keys")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    gpg = [p for p in files if p.suffix in (".asc", ".gpg")]
    ssh = [p for p in files if p.suffix == ".pub"]
    if not gpg and not ssh:
        raise SourceError(f"source.verify.keys: no public keys in {folder}",
                          fix="add the signers' OpenPGP (*.asc) or SSH (*.pub) public keys")
    return gpg, ssh


def verify_commit(repo_dir: Path, sha: str, keys_folder: Path, author: str) -> None:
    """Raise SourceError naming the commit and why, unless `sha` is signed by one of the trusted keys."""
    gpg_keys, ssh_keys = trusted_keys(keys_folder)
    with tempfile.TemporaryDirectory(prefix="reconciler-verify-") as scratch:
        home = Path(scratch) / "gnupg"
        home.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(home)}
        for key in gpg_keys:
            _run(["gpg", "--batch", "--quiet", "--import", str(key)], env, f"importing {key.name}")
        signers = Path(scratch) / "allowed_signers"
        signers.write_text("".join(f"* {line.strip()}\n" for key in ssh_keys
                                   for line in key.read_text().splitlines() if line.strip()))
        result = subprocess.run(
            ["git", "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", "--raw", sha],
            cwd=repo_dir, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if result.returncode != 0:
        why = _reason(result.stderr)
        raise SourceError(f"commit {sha[:10]} by {author} is not signed by a trusted key ({why}); nothing was rendered "
                          "or applied and the last applied state stays",
                          fix="sign the commit with a key in source.verify.keys (git commit -S), or add the signer's "
                              "public key there")


def _reason(stderr: str) -> str:
    text = " ".join(stderr.split())
    if not text or "no signature" in text.lower():
        return "the commit is unsigned"
    if "NO_PUBKEY" in text or "No principal matched" in text or "ERRSIG" in text:
        return "signed by an unknown key"
    if "BADSIG" in text or "Signature verification failed" in text:
        return "the signature does not match the commit"
    return text[:200]


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise SourceError(f"source.verify.keys: {what} failed: {' '.join(done.stderr.split())[:200]}",
                          fix="keep only public keys (gpg --export --armor, or an SSH *.pub line) in the folder")
