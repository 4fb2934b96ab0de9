"""Bearer credentials: `<kind>_<public id>_<secret>`, stored as the public prefix plus a hash of the secret.

Secrets are 40 random characters (≈238 bits), so a single SHA-256 is the right hash: a slow password
hash would only add latency to every ingest and quota call without adding safety.
"""

import hashlib
import hmac
import secrets
import string

KIND_PROJECT_KEY = "mlk"
KIND_PERSONAL_TOKEN = "mlt"
KIND_GATEWAY_TOKEN = "mlg"
KINDS = (KIND_PROJECT_KEY, KIND_PERSONAL_TOKEN, KIND_GATEWAY_TOKEN)

_ALPHABET = string.ascii_letters + string.digits
PUBLIC_ID_LENGTH = 12
SECRET_LENGTH = 40


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def credential_generate(kind: str) -> tuple[str, str, str]:
    """A new credential: (prefix, secret_hash, full token). The full token is shown once."""
    assert kind in KINDS
    prefix = f"{kind}_{_random(PUBLIC_ID_LENGTH)}"
    secret = _random(SECRET_LENGTH)
    return prefix, hash_secret(secret), f"{prefix}_{secret}"


def credential_parse(token: str) -> tuple[str, str, str] | None:
    """(kind, prefix, secret) of a well-formed token, else None."""
    parts = token.split("_")
    if len(parts) != 3:
        return None
    kind, public_id, secret = parts
    if kind not in KINDS or len(public_id) != PUBLIC_ID_LENGTH or len(secret) != SECRET_LENGTH:
        return None
    if not (public_id.isalnum() and public_id.isascii() and secret.isalnum() and secret.isascii()):
        return None
    return kind, f"{kind}_{public_id}", secret
