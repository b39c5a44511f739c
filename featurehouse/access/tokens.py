"""API tokens: created once (the secret is printed, never stored), kept as a salted hash.

A token reads `fht_<id>_<secret>`: the id finds the record, the secret is checked against its salted
SHA-256 with a constant-time comparison. Secrets are 256 random bits, so a fast hash is enough (a slow
one guards low-entropy passwords, which these are not) and verification costs microseconds; a
verified token is remembered per process until its record changes or it expires.

The warehouse (`featurehouse_tokens`) is the record; the online store holds the live tokens
(`fh:tokens`) for serving workers, which re-read it at most once a second: a revoke takes effect
within that second. `publish_tokens` makes the online copy equal to the warehouse again (sync does it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Mapping

from featurehouse.errors import FeaturehouseError
from featurehouse.online.keys import TOKENS

if TYPE_CHECKING:  # the catalog loads pyarrow and sqlglot, which a serving worker does without
    from featurehouse.catalog import Catalog

PREFIX = "fht"
SCOPES = ("read", "push", "admin", "metrics")  # push may name one view: push:<view>


class InvalidToken(FeaturehouseError):
    """A token that is missing, malformed, unknown, expired or revoked (HTTP 401)."""


class UnknownToken(FeaturehouseError):
    """A token id `token revoke` does not know."""


def parse_scopes(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not items:
        raise FeaturehouseError(f"give at least one scope ({', '.join(SCOPES)}, or push:<view>)")
    for scope in items:
        base, _, view = scope.partition(":")
        if base not in SCOPES or (view and base != "push") or (":" in scope and not view):
            raise FeaturehouseError(f"unknown scope '{scope}' (known: {', '.join(SCOPES)}, push:<view>)")
    return tuple(dict.fromkeys(items))


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    principal: str
    scopes: tuple[str, ...]
    salt: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None  # naive UTC
    revoked_at: datetime | None = None
    created_by: str = ""
    description: str = ""

    def live_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def online_value(self) -> bytes:
        expires = self.expires_at.replace(tzinfo=timezone.utc).timestamp() if self.expires_at else None
        return json.dumps({"principal": self.principal, "scopes": list(self.scopes), "salt": self.salt,
                           "hash": self.secret_hash, "expires_at": expires}).encode()

    def row(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "principal": self.principal, "scopes": ",".join(self.scopes),
                "salt": self.salt, "secret_hash": self.secret_hash, "created_at": self.created_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at, "created_by": self.created_by,
                "description": self.description}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "TokenRecord":
        return cls(row["token_id"], row["principal"], tuple(s for s in (row["scopes"] or "").split(",") if s),
                   row["salt"], row["secret_hash"], row["created_at"], row.get("expires_at"), row.get("revoked_at"),
                   row.get("created_by") or "", row.get("description") or "")


def new_token(principal: str, scopes, ttl: timedelta | None, now: datetime, created_by: str = "",
              description: str = "") -> tuple[str, TokenRecord]:
    """A fresh secret (returned once, to be shown once) and the record that keeps only its salted hash."""
    if not principal or not principal.strip() or any(c.isspace() for c in principal):
        raise FeaturehouseError(f"principal {principal!r}: give a name without spaces, e.g. svc-fraud")
    token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = TokenRecord(token_id, principal.strip(), parse_scopes(scopes), salt, _hash(salt, secret), now,
                         now + ttl if ttl else None, None, created_by, description)
    return f"{PREFIX}_{token_id}_{secret}", record


@dataclass(frozen=True)
class Authenticated:
    """Who a request acts for, and what its token lets it do."""

    principal: str
    scopes: frozenset[str]
    token_id: str | None = None  # None: no token (auth: none, or a local process)
    expires_at: float | None = None

    def allows(self, scope: str, view: str | None = None) -> bool:
        if scope in self.scopes:
            return True
        return scope == "push" and view is not None and f"push:{view}" in self.scopes


class TokenVerifier:
    """Checks bearer tokens against the online store's live tokens (`fh:tokens`), as serving re-reads them."""

    MAX_REMEMBERED = 10_000

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self.loaded = False
        self._raw: dict = {}
        self._verified: dict[bytes, Authenticated] = {}

    def update(self, raw: Mapping) -> None:
        """The `fh:tokens` hash as read from the online store; forgets verifications when it changed."""
        raw = dict(raw)
        self.loaded = True
        if raw == self._raw:
            return
        self._raw = raw
        self.records = {}
        for key, value in raw.items():
            try:
                self.records[key.decode() if isinstance(key, bytes) else key] = json.loads(value)
            except (ValueError, TypeError):
                continue  # a record we cannot read verifies nothing
        self._verified.clear()

    def verify(self, token: bytes, now: float) -> Authenticated:
        """The principal a token stands for, or InvalidToken saying why not (without saying which part was wrong
        beyond what the holder of the token already knows)."""
        known = self._verified.get(token)
        if known is not None and (known.expires_at is None or now < known.expires_at):
            return known
        text = token.decode("latin-1")
        prefix, _, rest = text.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not token_id or not secret:
            raise InvalidToken("malformed token: expected fht_<id>_<secret> (featurehouse token create)")
        record = self.records.get(token_id)
        # the comparison runs (on a dummy) even for an unknown id, so timing does not tell ids apart
        salt = record["salt"] if record else "00" * 16
        expected = record["hash"] if record else "0" * 64
        try:
            matches = hmac.compare_digest(_hash(salt, secret), expected)
        except ValueError:
            matches = False
        if record is None or not matches:
            raise InvalidToken("unknown or revoked token")
        expires = record.get("expires_at")
        if expires is not None and now >= expires:
            raise InvalidToken(f"token {token_id} expired at "
                               f"{datetime.fromtimestamp(expires, timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
        found = Authenticated(record["principal"], frozenset(record["scopes"]), token_id, expires)
        if len(self._verified) >= self.MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = found
        return found


# -- the record: warehouse first, then the online store --------------------------------------------


def create_token(catalog: Catalog, client, record: TokenRecord) -> None:
    """Recorded in the warehouse, then made live online (a failure online leaves it for `publish_tokens`)."""
    from featurehouse.catalog import TOKENS as TOKENS_TABLE

    catalog.table(TOKENS_TABLE)
    catalog.insert(TOKENS_TABLE, record.row())
    client.hset(TOKENS, record.token_id, record.online_value())


def list_tokens(catalog: Catalog) -> list[TokenRecord]:
    from featurehouse.catalog import TOKENS as TOKENS_TABLE

    return [TokenRecord.from_row(r) for r in catalog.rows(TOKENS_TABLE, order_by=["created_at"])]


def revoke_token(catalog: Catalog, client, token_id: str, now: datetime) -> TokenRecord:
    """Revoked in the warehouse and removed from the online store; revoking twice is harmless. Returns the record as
    it was before (its `revoked_at` set: it had been revoked already)."""
    from featurehouse.catalog import TOKENS as TOKENS_TABLE

    rows = catalog.rows(TOKENS_TABLE, {"token_id": token_id})
    if not rows:
        known = ", ".join(r.token_id for r in list_tokens(catalog)) or "none"
        raise UnknownToken(f"unknown token id '{token_id}' (tokens: {known})")
    record = TokenRecord.from_row(rows[0])
    if record.revoked_at is None:
        catalog.update(TOKENS_TABLE, {"revoked_at": now}, {"token_id": token_id})
    client.hdel(TOKENS, token_id)
    return record


def publish_tokens(catalog: Catalog, client, now: datetime) -> int:
    """Make the online store's live tokens those the warehouse holds live: after a wiped or restored store,
    a revoked token must not come back, nor a live one be missing."""
    live = {r.token_id: r for r in list_tokens(catalog) if r.live_at(now)}
    online = {k.decode() if isinstance(k, bytes) else k for k in client.hkeys(TOKENS)}
    stale = sorted(online - set(live))
    pipe = client.pipeline(transaction=True)
    if stale:
        pipe.hdel(TOKENS, *stale)
    for token_id, record in live.items():
        pipe.hset(TOKENS, token_id, record.online_value())
    pipe.execute()
    return len(live)


def local_principal() -> str:
    """Who a local process (CLI, SDK) acts for: FEATUREHOUSE_PRINCIPAL, else the OS user. This states intent and
    keeps paths consistent; it is not a security boundary (whoever runs the process has its credentials)."""
    import getpass
    import os

    principal = os.environ.get("FEATUREHOUSE_PRINCIPAL")
    if principal:
        return principal
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
