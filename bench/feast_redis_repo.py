"""What the Feast drivers (run by Feast's own venv) share: a Redis URL in Feast's connection-string
form, and a feature repo with a file registry, the local provider and a Redis online store."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path


def redis_connection_string(url: str) -> str:
    """redis://[:password@]host:port/db -> Feast's ``host:port,db=N[,password=...]``."""
    u = urllib.parse.urlparse(url)
    if u.scheme not in ("redis", "rediss"):
        raise SystemExit(f"--redis-url must be redis://host:port/db, got {url!r}")
    parts = [f"{u.hostname or '127.0.0.1'}:{u.port or 6379}", f"db={int((u.path or '/0').lstrip('/') or 0)}"]
    if u.password:
        parts.append(f"password={urllib.parse.unquote(u.password)}")
    if u.username and u.username != "default":
        parts.append(f"username={urllib.parse.unquote(u.username)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def write_repo(repo: Path, conn: str, project: str, write_batch_size: int | None = None) -> None:
    """feature_store.yaml for `project`: a file registry loaded once (cache_ttl_seconds 0), Redis online,
    file offline; `write_batch_size` sets materialization.online_write_batch_size (Feast's default: all)."""
    (repo / "data").mkdir(parents=True, exist_ok=True)
    batch = f"materialization:\n  online_write_batch_size: {write_batch_size}\n" if write_batch_size else ""
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\n"
        "registry:\n"
        "  registry_type: file\n"
        f"  path: {repo / 'data' / 'registry.db'}\n"
        "  cache_ttl_seconds: 0\n"  # 0 = load once, never expire
        "provider: local\n"
        "online_store:\n"
        "  type: redis\n"
        f"  connection_string: {json.dumps(conn)}\n"
        "offline_store:\n"
        "  type: file\n"
        f"{batch}"
        "entity_key_serialization_version: 3\n"
    )
