"""Who may use the control listener: bearer tokens configured by their hashes, client
certificates, and the dashboard's session cookies.

Tokens
    ``xmpp-vtn token new`` makes a token of 256 random bits; the configuration holds only its
    hash, ``sha256:<64 hex digits>``. A plain SHA-256 is the right tool for a secret of that
    entropy: nobody can search 2**256 candidates, so a slow, salted KDF (scrypt, PBKDF2) would
    add nothing against a leaked configuration, while it would cost tens of milliseconds of CPU
    on every request, which anyone able to reach the port could trigger. What a slow KDF protects,
    a guessable token, is refused instead: :func:`hash_token` takes no token shorter than
    :data:`MIN_TOKEN_LENGTH`. The presented token's hash is compared with every configured hash
    with :func:`hmac.compare_digest`, without stopping at the first match.

Client certificates
    With a CA configured, the listener asks for a client certificate and the TLS handshake
    verifies it; a request that arrives with a verified certificate is its subject's.

Sessions
    The dashboard's login form exchanges a token for a random session id in an ``HttpOnly``,
    ``SameSite=Strict`` cookie (``Secure`` over TLS), kept in this process's memory: tokens never
    travel in URLs, and a logout or restart ends the session.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from typing import Iterable, Mapping

SCHEME = "sha256"
MIN_TOKEN_LENGTH = 32
_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")

#: How long a dashboard session lasts, and how many are kept (the oldest is dropped beyond).
SESSION_SECONDS = 12 * 3600.0
MAX_SESSIONS = 1000
SESSION_COOKIE = "xmpp_vtn_session"


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hash to put in the configuration for ``token``: ``sha256:<hex>``.

    >>> hash_token("correct-horse-battery-staple-0123456789")[:7]
    'sha256:'

    Raises ValueError for a token shorter than :data:`MIN_TOKEN_LENGTH` or with whitespace.
    """
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"a token must have at least {MIN_TOKEN_LENGTH} characters "
                         "(make one with `xmpp-vtn token new`)")
    if any(character.isspace() for character in token):
        raise ValueError("a token must not contain whitespace")
    return f"{SCHEME}:{_digest(token).hex()}"


def check_token_hash(text: str) -> str:
    """``text`` if it is a token hash as :func:`hash_token` writes it; ValueError otherwise."""
    if not isinstance(text, str) or not _HASH.match(text.strip().lower()):
        raise ValueError("must be a token hash such as \"sha256:<64 hex digits>\" (from `xmpp-vtn token hash`), "
                         "never the token itself")
    return text.strip().lower()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Tokens:
    """The configured tokens: a list of hashes, or a mapping of names to hashes.

    A token's name is who made a change in the exchange log; unnamed tokens are named after the
    start of their hash (``token sha256:1a2b3c4d``), which reveals nothing of the token.
    """

    def __init__(self, hashes: Iterable[str] | Mapping[str, str] = ()):
        if isinstance(hashes, str):
            raise TypeError("control_tokens must be a list of token hashes (or a dict of name: hash), not one string")
        named = hashes.items() if isinstance(hashes, Mapping) else ((None, value) for value in hashes)
        self._known: list[tuple[bytes, str]] = []
        for name, value in named:
            try:
                checked = check_token_hash(value)
            except ValueError as error:
                raise ValueError(f"control token {name or len(self._known) + 1}: {error}") from None
            self._known.append((bytes.fromhex(checked.split(":", 1)[1]), name or f"token {checked[:15]}"))

    def __len__(self) -> int:
        return len(self._known)

    def who(self, token: str) -> str | None:
        """The name of the configured token ``token`` is, or None."""
        presented = _digest(token)
        found = None
        for digest, name in self._known:          # every hash compared: the time says nothing
            if hmac.compare_digest(presented, digest):
                found = name
        return found


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header ('' when malformed, None when absent)."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return ""
    return token


def certificate_subject(peercert: dict | None) -> str | None:
    """``cert CN=...`` for a verified client certificate (as ``ssl`` reports it), or None."""
    if not peercert:
        return None
    fields = dict(item for part in peercert.get("subject", ()) for item in part)
    name = fields.get("commonName") or fields.get("organizationName") or "unnamed"
    return f"cert CN={name}"


class Sessions:
    """Dashboard sessions: random ids that stand for who logged in, until they expire."""

    def __init__(self, seconds: float = SESSION_SECONDS, clock=time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._open: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def open(self, who: str) -> str:
        """A new session for ``who``; returns its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        self._open[session_id] = (who, self.clock() + self.seconds)
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return session_id

    def who(self, session_id: str | None) -> str | None:
        """Who the session ``session_id`` belongs to; None if unknown or expired."""
        if not session_id:
            return None
        found = self._open.get(session_id)
        if found is None:
            return None
        if found[1] < self.clock():
            del self._open[session_id]
            return None
        return found[0]

    def close(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            self._open.pop(session_id, None)
