"""Redis users for featurehouse: one per role, each allowed only the commands and keys its processes
use (docs/security.md, "Redis users (ACL)"; `featurehouse online acl` prints them).

- serving: `featurehouse serve` workers and in-process reads. Reads entity hashes and the state
  hashes; appends only to the served-values sample stream and the audit stream, and records pending
  feature definitions. It cannot write a feature value, delete a key or load code.
- writer: sync, the stream consumer, `push`, `forget`, `retention`, `promote` and every other
  command-line tool. Everything featurehouse does to its own keys (`fh:*`), and nothing else: no
  administrative command (FLUSHALL, FLUSHDB, CONFIG, ACL, DEBUG, SHUTDOWN, MODULE, KEYS, MONITOR, ...);
  none of them is used by featurehouse on a Redis it is given by URL.
- push (optional): `featurehouse push-api`. Appends to the views' push streams and their dead letters.

The featurehouse Lua library (FUNCTION LOAD) is loaded by the writer: every writer process loads it
when it opens the store. The serving user may call its read-only function (FCALL_RO fh_hmget_many,
whose HMGETs run under the serving user's own rules) but cannot load or replace it, since a library
it could replace would run its code with the writer's rights the next time the writer calls it.

Redis 7 read/write key permissions (`%R~`, `%W~`, `~` for both) confine each command to its keys: the
serving user's HSET reaches `fh:pending_definitions` only, its XADD the two streams it appends to.
A command with a read-write key (HSET, XADD) needs both permissions on that key.

Rules are built from `Grant`s, each with the reason it is there; `featurehouse online acl --explain`
prints them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from featurehouse.errors import FeaturehouseError
from featurehouse.online.keys import (
    ACTIVE_VERSIONS,
    DEPLOY_CHECKS,
    GUARD_RESULTS,
    LAG_HISTORY,
    LAYOUTS,
    MATERIALIZER,
    MODEL_RECORDS,
    MODEL_VERSIONS,
)

# Keys named elsewhere (tests check these against their sources: importing those modules here would
# load pyarrow and sqlglot for a command that prints text).
SERVED_STREAM = "fh:served"  # featurehouse.serving.served_log.SERVED_STREAM
PENDING_DEFINITIONS = "fh:pending_definitions"  # featurehouse.serving.definitions.PENDING
TOKENS = "fh:tokens"  # live API tokens (featurehouse/access/tokens.py): serving verifies bearer tokens
AUDIT_STREAM = "fh:audit"  # audit events serving appends (featurehouse/access/audit.py)
AUDIT_KEY = "fh:audit_key"  # the key serving pseudonymises entity ids in audit events with
ENTITY_HASHES = "fh:{*"  # featurehouse.online.keys.entity_key: fh:{<entity type>:<key>}
PUSH_STREAMS = "fh:stream:{*"  # featurehouse.stream.log.stream_key: fh:stream:{<view>@<N>}
DEAD_LETTERS = "fh:dead:{*"  # featurehouse.stream.log.dead_letter_key: fh:dead:{<view>@<N>}
ALL_KEYS = "fh:*"  # every key featurehouse makes

Format = Literal["setuser", "acl-file"]
ROLES = ("serving", "writer", "push")
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9@+_.:/=-]+$")  # printed bare; anything else is double-quoted


class AclError(FeaturehouseError):
    """A user name or password source that cannot make an ACL."""


@dataclass(frozen=True)
class Grant:
    """One ACL rule (`+hmget`, `%R~fh:{*`) and why the role needs it."""

    rule: str
    why: str


@dataclass(frozen=True)
class Role:
    role: str  # serving, writer, push
    user: str  # the Redis user name
    used_by: str  # which featurehouse processes connect as this user
    grants: tuple[Grant, ...]

    def rules(self) -> list[str]:
        """The user's rules after its password: no channels, no command but those granted, then keys."""
        commands = [g.rule for g in self.grants if g.rule.startswith("+")]
        keys = [g.rule for g in self.grants if not g.rule.startswith("+")]
        return ["resetchannels", "-@all", *commands, *keys]

    @property
    def commands(self) -> frozenset[str]:
        """Granted commands, lower case (`function|load` for a subcommand)."""
        return frozenset(g.rule[1:].lower() for g in self.grants if g.rule.startswith("+"))

    @property
    def key_patterns(self) -> tuple[str, ...]:
        return tuple(g.rule for g in self.grants if "~" in g.rule)


# -- what each role is granted, and why ---------------------------------------------------------

_PING = Grant("+ping", "health checks (/readyz, `featurehouse serve` at start, the stream consumer after an error)")

# Keys serving never touches: only writers use them.
NOT_SERVED = {
    "fh:store_id": "the store's identity, for sync's run log",
    "fh:tombstones": "forgotten entities, checked by sync and the stream consumer",
    PUSH_STREAMS: "pushed rows: the push user appends, the stream consumer applies",
    DEAD_LETTERS: "rows the push path or the consumer rejected",
}

# What redis-py's cluster client sends to learn the topology and where a command's keys live.
CLUSTER_GRANTS = (
    Grant("+cluster|slots", "Redis Cluster: redis-py's cluster client reads the slot map (CLUSTER SLOTS)"),
    Grant("+command", "Redis Cluster: redis-py reads the command table (COMMAND, COMMAND GETKEYS) to route "
                      "FCALL and XREADGROUP, whose keys it cannot find alone; introspection only"),
    Grant("+readonly", "Redis Cluster, `replica_reads`: a replica's connection answers reads of its primary's slots"),
    Grant("+info", "Redis Cluster, `replica_reads`: the probe reads INFO replication (roles, replication offsets) "
                   "on every node; introspection only"),
)
SELECT_GRANT = Grant("+select", "a database other than 0 in the Redis URL (/N): ACLs are not per database, "
                                "so this user reaches featurehouse's keys in every database of the server")
CLIENT_SETINFO_GRANT = Grant("+client|setinfo", "redis-py names itself on connect (Redis 7.2+, Valkey); refused, "
                                                "it is ignored by redis-py but noted in ACL LOG")


def serving_grants(definitions: bool = True, push: bool = False) -> tuple[Grant, ...]:
    """`push`: also the push route `featurehouse serve` mounts with its setting `push: true`."""
    grants = [
        _PING,
        Grant("+hmget", "a vector of one entity: one HMGET of its hash (every read, on a cluster)"),
        Grant("+fcall_ro", "vectors of many entities in one call: fh_hmget_many, flagged no-writes; its HMGETs run "
                           "under this user's rules (it cannot call the library's writing functions)"),
        Grant("+hgetall", "the state hashes, re-read once a second: active versions, layouts, materializer marks, "
                          "model versions, deploy checks, live tokens; /metrics lag; pending definitions; the web "
                          "catalog's model records, parity results and lag history (when a page asks)"),
        Grant("+get", f"the audit pseudonym key ({AUDIT_KEY})"),
        Grant("+xadd", f"appending served-vector samples ({SERVED_STREAM}) and audit events ({AUDIT_STREAM})"
                       + ("; pushed rows (serve's push route)" if push else "")),
    ]
    if definitions:
        grants.append(Grant("+fcall", "POST /v1/feature-definitions records a pending definition within the cap in one "
                                      "call (fh_add_pending); the library's other functions write keys this user "
                                      "may only read, so Redis refuses them"))
        grants.append(Grant("+hexists", "fh_add_pending: whether the definition is already pending"))
        grants.append(Grant("+hlen", "fh_add_pending: how many definitions are pending (the cap)"))
        grants.append(Grant("+hset", f"fh_add_pending records the definition ({PENDING_DEFINITIONS})"))
    grants += [
        Grant(f"%R~{ENTITY_HASHES}", "entity hashes: read"),
        Grant(f"%R~{ACTIVE_VERSIONS}", "the version of each view that serving reads: read"),
        Grant(f"%R~{LAYOUTS}", "the column order of each view's stored arrays: read"),
        Grant(f"%R~{MATERIALIZER}", "sync and stream marks (staleness, rolled-back stores): read"),
        Grant(f"%R~{MODEL_VERSIONS}", "registered model versions' features: read"),
        Grant(f"%R~{DEPLOY_CHECKS}", "the last deploy check of each model version: read"),
        Grant(f"%R~{MODEL_RECORDS}", "the web catalog: model versions' training sets (summaries): read"),
        Grant(f"%R~{GUARD_RESULTS}", "the web catalog: each view's last parity check: read"),
        Grant(f"%R~{LAG_HISTORY}", "the web catalog: each view's lag over time (sparklines): read"),
        Grant(f"%R~{TOKENS}", "live API tokens (salted hashes) to verify bearer tokens: read"),
        Grant(f"%R~{AUDIT_KEY}", "the audit pseudonym key: read"),
        Grant(f"~{SERVED_STREAM}", "served-vector samples: XADD (a read-write key: it trims the stream)"),
        Grant(f"~{AUDIT_STREAM}", "audit events: XADD (a read-write key)"),
    ]
    if definitions:
        grants.append(Grant(f"~{PENDING_DEFINITIONS}", "pending definitions: HGETALL and HSET"))
    if push:
        grants += [Grant(f"~{PUSH_STREAMS}", "serve's push route (push: true): the views' push streams, XADD"),
                   Grant(f"~{DEAD_LETTERS}", "serve's push route (push: true): rejected rows, XADD")]
    return tuple(grants)


def writer_grants() -> tuple[Grant, ...]:
    return (
        _PING,
        Grant("+function|load", "loading featurehouse's Lua library (FUNCTION LOAD REPLACE) whenever a writer "
                                "opens the store, and the stream consumer after Redis restarted"),
        Grant("+fcall", "guarded writes (fh_guard_batch, fh_restate_batch), sync and stream marks (fh_mark_max), "
                        "retention's compare-and-delete (fh_expire)"),
        Grant("+fcall_ro", "in-process reads of many entities (FeatureStore.online_features)"),
        Grant("+hget", "layouts, sync marks, and inside the library's functions"),
        Grant("+hmget", "reads (parity, forget's check, retention's event times, tombstones)"),
        Grant("+hgetall", "the state hashes (freshness, active versions, layouts)"),
        Grant("+hkeys", "publishing live tokens"),
        Grant("+hset", "active versions (sync, promote), materializer lag, deploy checks, model versions, tokens; "
                       "inside the guarded-write functions"),
        Grant("+hsetnx", "recording a view's layout once (the first writer wins)"),
        Grant("+hdel", "retention (inside fh_expire), token revocation"),
        Grant("+get", "the store id, the audit key"),
        Grant("+set", "making the store id and the audit key once (SET NX)"),
        Grant("+scan", "forget and retention walk entity hashes by pattern (SCAN lists key names of the whole "
                       "database, never values)"),
        Grant("+del", "forget deletes entity hashes"),
        Grant("+xadd", "`featurehouse push`, dead letters, served samples of in-process reads"),
        Grant("+xrange", "landing the served-values and audit streams; the stream consumer's lag"),
        Grant("+xlen", "the demo waits for its served vector to be logged (a count, no values)"),
        Grant("+xtrim", "trimming what landed of the served-values stream"),
        Grant("+xdel", "deleting what landed of the audit stream"),
        Grant("+xgroup|create", "the stream consumer's group (MKSTREAM)"),
        Grant("+xreadgroup", "the stream consumer reads pushed rows"),
        Grant("+xautoclaim", "claiming entries a dead consumer left pending"),
        Grant("+xack", "acknowledging applied entries"),
        Grant("+xpending", "delivery counts (dead-lettering) and the oldest pending entry (lag)"),
        Grant("+xinfo|groups", "the group's last delivered entry (lag)"),
        Grant("+multi", "dead-lettering an entry and acknowledging it at once; publishing tokens"),
        Grant("+exec", "see MULTI"),
        Grant(f"~{ALL_KEYS}", "every key featurehouse makes, read and write; no other key"),
    )


def push_grants() -> tuple[Grant, ...]:
    return (
        _PING,
        Grant("+xadd", "appending validated rows to a view's stream, rejected rows to its dead letters"),
        Grant(f"~{PUSH_STREAMS}", "the views' push streams: XADD (a read-write key: it trims the stream)"),
        Grant(f"~{DEAD_LETTERS}", "the views' dead-letter streams: XADD"),
    )


def roles(prefix: str = "featurehouse", push: bool = False, definitions: bool = True, cluster: bool = False,
          select: bool = False, client_setinfo: bool = False, serving_push: bool = False) -> list[Role]:
    """The roles to create: serving and writer, and push when asked; `definitions` lets serving record
    pending definitions, `serving_push` append pushed rows (serve's `push: true`). `cluster`, `select`
    and `client_setinfo` add what redis-py needs for a cluster, a database other than 0, and Redis
    7.2's CLIENT SETINFO (which Redis 7.0 does not know: an ACL naming it is refused there)."""
    extra = (*(CLUSTER_GRANTS if cluster else ()), *((SELECT_GRANT,) if select else ()),
             *((CLIENT_SETINFO_GRANT,) if client_setinfo else ()))
    made = [
        Role("serving", user_name(prefix, "serving"), "the workers of featurehouse serve",
             _with(serving_grants(definitions, serving_push), extra)),
        Role("writer", user_name(prefix, "writer"), "sync, stream, push, forget, retention, backfill, promote, "
             "check, freshness, skew, drift, deploy-check, token and every other command-line tool; in-process "
             "reads (FeatureStore.online_features)", _with(writer_grants(), extra)),
    ]
    if push:
        made.append(Role("push", user_name(prefix, "push"), "featurehouse push-api", _with(push_grants(), extra)))
    return made


def _with(grants: tuple[Grant, ...], extra: Sequence[Grant]) -> tuple[Grant, ...]:
    commands = [g for g in grants if g.rule.startswith("+")]
    keys = [g for g in grants if not g.rule.startswith("+")]
    return (*commands, *extra, *keys)


def user_name(prefix: str, role: str) -> str:
    name = f"{prefix}-{role}"
    if not _USER_NAME.match(name):
        raise AclError(f"user name {name!r}: use letters, digits, '.', '_' and '-' (from --prefix {prefix!r})")
    return name


# -- passwords ----------------------------------------------------------------------------------


def new_password() -> str:
    """256 random bits, URL-safe (it goes into redis:// URLs as it is)."""
    return secrets.token_urlsafe(32)


def password_hash(password: str) -> str:
    """The `#<sha256>` form ACL rules take: Redis stores and compares only the hash."""
    if not password:
        raise AclError("an empty password")
    return "#" + hashlib.sha256(password.encode("utf-8")).hexdigest()


# -- output -------------------------------------------------------------------------------------


def _quoted(token: str) -> str:
    """Safe to paste into a shell and to pipe into redis-cli: `#...` would start a shell comment,
    `|` a pipe, `*` and `{` a glob."""
    return token if _SAFE_TOKEN.match(token) else f'"{token}"'


def setuser_command(role: Role, hashed: str) -> str:
    """`ACL SETUSER <user> reset on #<sha256> ...`: `reset` first, so running it again leaves exactly
    these rules (and this password)."""
    tokens = ["reset", "on", hashed, *role.rules()]
    return f"ACL SETUSER {role.user} " + " ".join(_quoted(t) for t in tokens)


def acl_file_line(role: Role, hashed: str) -> str:
    """A line of an ACL file (`aclfile` in redis.conf). Such files hold no comments."""
    return " ".join(["user", role.user, "on", hashed, *role.rules()])


def render(made: Iterable[Role], hashes: dict[str, str], fmt: Format = "setuser") -> list[str]:
    """One line per role; `hashes` maps a role to its password's `#<sha256>`."""
    line = setuser_command if fmt == "setuser" else acl_file_line
    return [line(role, hashes[role.role]) for role in made]


def explain(made: Iterable[Role]) -> list[str]:
    """Every role's rules, each with its reason."""
    out: list[str] = []
    for role in made:
        out.append(f"{role.user} ({role.role}): {role.used_by}")
        for grant in role.grants:
            out.append(f"  {grant.rule:<28} {grant.why}")
        out.append("  everything else is refused (-@all, no pub/sub channels)")
    return out
