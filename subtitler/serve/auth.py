"""Who is asking, and whether an upload URL is one this server signed.

API keys come from SUBTITLER_SERVE_KEYS (comma-separated) and/or a keys file
(one key a line, `#` comments). Only their SHA-256 hashes are kept in memory
and in the job store (a job's owner); a presented key is hashed and compared
with every known hash by `hmac.compare_digest`, so neither the comparison's
time nor an early exit tells how much of a key was right.

Upload URLs need no key (the post's sample PUTs without one): they carry an
expiry and an HMAC-SHA256 over the method, path and expiry, made with a
secret kept in the data folder (so URLs stay valid across restarts). A URL
whose path, expiry or signature was changed, or that has expired, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ServeError

# The owner of every job when no key is configured (loopback, or --insecure-no-auth).
ANONYMOUS = "anonymous"
KEYS_ENV = "SUBTITLER_SERVE_KEYS"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Keys:
    """The configured API keys, as hashes."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self.hashes = tuple(dict.fromkeys(key_hash(k) for k in keys if k))

    @classmethod
    def load(cls, keys_file: Path | None, environ: Mapping[str, str] | None = None) -> Keys:
        """The keys of SUBTITLER_SERVE_KEYS and of `keys_file` (ServeError if it cannot be read)."""
        environ = os.environ if environ is None else environ
        keys = [k.strip() for k in environ.get(KEYS_ENV, "").split(",")]
        if keys_file is not None:
            try:
                text = keys_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                why = getattr(e, "strerror", None) or e
                raise ServeError(f"{keys_file}: cannot read the keys file ({why})") from None
            keys += [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
        return cls(keys)

    @property
    def required(self) -> bool:
        return bool(self.hashes)

    def owner(self, authorization: str | None) -> str | None:
        """The owner (key hash) an `Authorization: Bearer KEY` header names; None: no valid key.
        Without keys configured every request is the anonymous owner's."""
        if not self.required:
            return ANONYMOUS
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        presented = key_hash(key.strip())
        found = None
        for known in self.hashes:  # every hash compared: the time does not depend on which matched
            if hmac.compare_digest(presented, known):
                found = known
        return found


class Signer:
    """Signs and checks upload URLs with the data folder's secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    @classmethod
    def for_folder(cls, folder: Path) -> Signer:
        """The folder's secret, made on first use (private, written whole or not at all)."""
        path = folder / "secret"
        if not path.exists():
            tmp = folder / f".secret.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return cls(bytes.fromhex(path.read_text().strip()))

    def signature(self, method: str, path: str, expires: int) -> str:
        return hmac.new(self.secret, f"{method} {path} {expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, ttl: float) -> str:
        """The query string that makes `path` usable for `method` for `ttl` seconds."""
        expires = int(time.time() + ttl)
        return f"expires={expires}&signature={self.signature(method, path, expires)}"

    def check(self, method: str, path: str, expires: str | None, signature: str | None,
              *, allow_expired: bool = False) -> str | None:
        """Why the URL is refused (None: it is good)."""
        try:
            when = int(expires or "")
        except ValueError:
            return "the upload URL is not signed"
        if not signature or not hmac.compare_digest(signature, self.signature(method, path, when)):
            return "the upload URL's signature does not match"
        if not allow_expired and when < time.time():
            return "the upload URL has expired (ask for a new one)"
        return None
