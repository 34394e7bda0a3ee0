"""Job tokens and the admin key.

A job token is 256 random bits, shown once (in the create answer) and stored only as its
SHA-256: for a high-entropy secret a fast hash is enough (nothing to brute-force), and a
leaked database gives no usable tokens. Comparisons are constant-time.

Who may do what:
    - creating and listing jobs: anyone, or only the admin key holder when
      ``AUTOLR_ADMIN_KEY`` is set;
    - reporting on, reading and cancelling a job: its token, or the admin key.

Credentials travel as ``Authorization: Bearer <token or admin key>``; the admin key may also
travel as ``X-Admin-Key: <key>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid

#: Hash of a token no one holds: compared against for unknown jobs, so an unknown job and a
#: wrong token take the same path (and the same time).
_NOBODY = hashlib.sha256(b"autolr: no such job").hexdigest()


#: What a job id may look like: checked before any database sees it (a NUL byte, say, is an
#: error on PostgreSQL). New ids are 32 hex digits; the charset leaves room for other schemes.
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)


def valid_job_id(job_id: str) -> bool:
    """Whether ``job_id`` has the shape of a job id (1-64 of ``A-Za-z0-9_-``)."""
    return isinstance(job_id, str) and _JOB_ID.fullmatch(job_id) is not None


def new_job_id() -> str:
    """A fresh job id (random: ids reveal nothing about other jobs or their count)."""
    return uuid.uuid4().hex


def new_token() -> str:
    """A fresh job token: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str | None, token_hash: str | None) -> bool:
    """Whether ``token`` hashes to ``token_hash``, in constant time.

    ``token_hash=None`` stands for an unknown job: the comparison still runs (against a hash no
    token matches) so the answer takes the same time either way.
    """
    expected = token_hash if token_hash is not None else _NOBODY
    supplied = hash_token(token) if token is not None else ""
    return hmac.compare_digest(supplied, expected) and token_hash is not None


def key_matches(supplied: str | None, admin_key: str | None) -> bool:
    """Whether ``supplied`` is the admin key (constant time; False when no key is set)."""
    if admin_key is None or supplied is None:
        return False
    return hmac.compare_digest(supplied.encode("utf-8"), admin_key.encode("utf-8"))
