"""Who may use the review page, and proof that a form was sent by it (pure: no web
server here, only keys, cookies and hashes).

- **Sign-in** (``[web] auth``): none (loopback only: the config refuses another
  address), a token (``env:NAME``) or a password hash (argon2 or bcrypt). A browser
  signs in once and holds a signed session cookie; a program sends the token as
  ``Authorization: Bearer …``, or the password as HTTP Basic.
- **The session cookie** names who signed in (their verdicts on alerts carry it)
  and a random session id, with an expiry, signed with HMAC-SHA256 under a key made
  from the database's secret (shared by every worker) and the ``auth`` setting (a
  new password or token ends every session).
- **CSRF**: every form carries an HMAC of the session id; a POST whose token does not
  match, or whose ``Origin`` is another site's, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from monitor.config import WebSettings

SESSION_SECONDS = 14 * 86400
LOCAL_REVIEWER = "local"  # who marks an alert where nobody signs in (a loopback page)


@dataclass(frozen=True)
class Session:
    sid: str
    who: str
    expires: int  # unix seconds

    @property
    def signed_in(self) -> bool:
        return bool(self.who)


class Keys:
    """Signs and checks session cookies and CSRF tokens under one key."""

    def __init__(self, db_secret: str, web: WebSettings) -> None:
        material = f"{web.auth}\0{web.token}".encode()
        self._key = hmac.new(bytes.fromhex(db_secret), material, hashlib.sha256).digest()

    def _mac(self, purpose: str, data: bytes) -> str:
        mac = hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def new_session(self, who: str, now: float | None = None) -> Session:
        return Session(secrets.token_urlsafe(18), who,
                       int((time.time() if now is None else now) + SESSION_SECONDS))

    def cookie(self, s: Session) -> str:
        body = base64.urlsafe_b64encode(json.dumps(
            {"sid": s.sid, "who": s.who, "exp": s.expires}, separators=(",", ":"))
            .encode()).decode().rstrip("=")
        return f"{body}.{self._mac('session', body.encode())}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds: None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", body.encode())):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            s = Session(str(raw["sid"]), str(raw["who"]), int(raw["exp"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        return s if s.expires > (time.time() if now is None else now) else None

    def csrf(self, s: Session) -> str:
        return self._mac("csrf", s.sid.encode())

    def csrf_ok(self, s: Session | None, token: str | None) -> bool:
        return s is not None and token is not None and hmac.compare_digest(self.csrf(s), token)


class Credentials:
    """Checks a token or a password against ``[web] auth``. A password hash is slow by
    design (tens of ms): a password that passed is remembered for a while, by its
    SHA-256, so an API client's every request does not pay it."""

    REMEMBER_SECONDS = 300.0

    def __init__(self, web: WebSettings) -> None:
        self.web = web
        self._passed: dict[bytes, float] = {}

    def check(self, secret: str) -> bool:
        if self.web.kind == "none":
            return True
        if not secret:
            return False
        if self.web.kind == "token":
            return hmac.compare_digest(secret.encode(), self.web.token.encode())
        digest = hashlib.sha256(secret.encode()).digest()
        now = time.monotonic()
        if self._passed.get(digest, 0.0) > now:
            return True
        ok = verify_password(self.web.auth, secret)
        if ok:
            if len(self._passed) > 100:
                self._passed.clear()
            self._passed[digest] = now + self.REMEMBER_SECONDS
        return ok


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` is the one ``hashed`` (argon2 or bcrypt) was made from."""
    if hashed.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return PasswordHasher().verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False
    import bcrypt

    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for ``[web] auth``."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


class Throttle:
    """Failed sign-ins per client address: after ``limit`` within ``window`` seconds,
    further tries are refused until the window has passed (guessing is slowed to a
    crawl; a user who mistyped waits a few minutes)."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` must wait (0: may try now)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(client, []) if t > now - self.window]
        self._failures[client] = recent
        return 0.0 if len(recent) < self.limit else recent[0] + self.window - now

    def failed(self, client: str, now: float | None = None) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(client, []).append(time.monotonic() if now is None else now)
