"""Rule secrets sealed with AES-GCM under `DISPARO_SECRET_KEY` before they reach a topic."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from disparo.errors import DisparoError, SettingsError

SEALED_PREFIX = "enc:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
HOW_TO_MAKE_ONE = "make one with `disparo secrets new-key` (32 random bytes, base64)"


class SecretKeyMismatch(DisparoError):
    """A sealed secret was sealed under a key this process does not hold."""


class SealMismatch(SecretKeyMismatch):
    """A sealed value does not open for the context given: altered, or sealed for another
    rule or URL (the key that sealed it is held)."""


def new_key_text() -> str:
    """A fresh master key, as `DISPARO_SECRET_KEY` takes it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _key_from_text(text: str, variable: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{variable} is not base64; {HOW_TO_MAKE_ONE}") from None
    if len(key) != KEY_BYTES:
        raise SettingsError(
            f"{variable} must hold {KEY_BYTES} bytes, not {len(key)}; {HOW_TO_MAKE_ONE}"
        )
    return key


def fingerprint(key: bytes) -> str:
    """A short public name of a key: which key sealed a secret, without revealing it."""
    return hashlib.sha256(b"disparo-secret-key/" + key).hexdigest()[:8]


class SecretBox:
    """Seals and opens rule secrets; `previous` opens what an old key sealed (rewrapping)."""

    def __init__(self, key_text: str | None, previous_text: str | None = None) -> None:
        if not key_text:
            raise SettingsError(
                "DISPARO_SECRET_KEY is not set: rule secrets are encrypted with it in the rules "
                f"topic; `make up` keeps one in $DISPARO_HOME/secret.key, or {HOW_TO_MAKE_ONE}"
            )
        key = _key_from_text(key_text, "DISPARO_SECRET_KEY")
        self.fingerprint = fingerprint(key)
        self._keys = {self.fingerprint: AESGCM(key)}
        if previous_text:
            old = _key_from_text(previous_text, "DISPARO_SECRET_KEY_PREVIOUS")
            self._keys.setdefault(fingerprint(old), AESGCM(old))

    def seal(self, plain: str, context: str) -> str:
        """`plain` encrypted under the current key; `context` (e.g. the rule id) is bound in."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.fingerprint].encrypt(nonce, plain.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{SEALED_PREFIX}{self.fingerprint}:{blob}"

    def open(self, text: str, context: str) -> str:
        """The plain secret; text that is not sealed (written before encryption) as it is."""
        if not is_sealed(text):
            return text
        key_id, _, blob = text.removeprefix(SEALED_PREFIX).partition(":")
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretKeyMismatch(
                f"a rule secret was sealed with key {key_id}, but DISPARO_SECRET_KEY is "
                f"{self.fingerprint}: set the key that sealed it (or, while rewrapping, "
                "DISPARO_SECRET_KEY_PREVIOUS); see `disparo secrets rewrap --help`"
            )
        try:
            raw = base64.urlsafe_b64decode(blob)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SealMismatch(
                f"a rule secret sealed with key {key_id} does not open ({type(exc).__name__}): "
                "the record was altered or copied from another rule"
            ) from None

    def sealed_with_current(self, text: str) -> bool:
        """Whether `text` is sealed under the current key (nothing to rewrap)."""
        return text.startswith(f"{SEALED_PREFIX}{self.fingerprint}:")


def is_sealed(text: str) -> bool:
    return text.startswith(SEALED_PREFIX)
