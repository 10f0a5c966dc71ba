"""Password hashing with scrypt (a slow, memory-hard KDF), through werkzeug's helpers."""

from __future__ import annotations

from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

MIN_PASSWORD_LENGTH = 10
# werkzeug's scrypt defaults (N=2**15, r=8, p=1): ~50-100 ms a hash. A hash records its own parameters, so
# raising them later leaves old hashes verifiable. Test suites may lower it, as Django's do.
HASH_METHOD = "scrypt"


@cache
def _dummy_hash() -> str:
    """Checked against when the username is unknown, so that a login takes as long either way. Made at the
    first such login, not at import: every process importing this module paid ~0.2 s of CPU for it."""
    return generate_password_hash("jobyard-timing-equaliser", method="scrypt")


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password, method=HASH_METHOD)


def verify_password(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(password_hash, password)
