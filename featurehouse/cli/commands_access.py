"""Access: `featurehouse access explain`, `featurehouse token create|list|revoke`."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from featurehouse.cli.context import CliContext
from featurehouse.errors import FeaturehouseError


@click.group()
def access() -> None:
    """The access policy: who may read which features (vars.featurehouse.teams, each view's owner,
    sensitivity and shared_with, each exposure's team)."""


@access.command("explain")
@click.argument("principal")
@click.argument("target", metavar="FEATURE|VIEW|MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
@click.pass_obj
def explain(obj: CliContext, principal: str, target: str, as_json: bool) -> None:
    """Say whether PRINCIPAL may read a feature (view.column[@N]), a view (view[@N]) or every feature of a
    model (an exposure), and why. Exits 1 when anything is denied.

    \b
      featurehouse access explain svc-fraud user_profile.country
      featurehouse access explain alice fraud_model
    """
    store = obj.store()
    decisions = store.explain_access(principal, target)
    if as_json:
        click.echo(json.dumps([d.as_dict() for d in decisions], indent=2))
    else:
        table = Table(title=f"access: {principal} -> {target}", title_justify="left")
        for col in ("view", "sensitivity", "decision", "why"):
            table.add_column(col)
        for d in decisions:
            verdict = "[green]allowed[/green]" if d.allowed else "[red]denied[/red]"
            why = d.reason + (f"\n[dim]to allow: {d.remedy}[/dim]" if d.remedy and not d.allowed else "")
            table.add_row(d.view, d.sensitivity, verdict, why)
        obj.console.print(table)
    sys.exit(0 if all(d.allowed for d in decisions) else 1)


@click.group()
def token() -> None:
    """API tokens for `featurehouse serve` and `push-api`: the secret is shown once, only a salted hash is kept
    (in the warehouse's featurehouse_tokens and the online store)."""


@token.command("create")
@click.option("--principal", required=True, help="Who the token acts for (a team member in vars.featurehouse.teams).")
@click.option("--scopes", default="read", show_default=True,
              help="Comma-separated: read, push (or push:VIEW), admin, metrics.")
@click.option("--ttl", default="90d", show_default=True, help="How long it lives (e.g. 30d, 12h), or 'never'.")
@click.option("--description", default="", help="What the token is for (shown by `token list`).")
@click.pass_obj
def create(obj: CliContext, principal: str, scopes: str, ttl: str, description: str) -> None:
    """Create a token and print its secret once."""
    from featurehouse.access.tokens import create_token, local_principal, new_token
    from featurehouse.clock import utc_now
    from featurehouse.durations import parse_duration

    lifetime = None if ttl.strip().lower() == "never" else parse_duration(ttl)
    if lifetime is not None and lifetime.total_seconds() <= 0:
        raise FeaturehouseError(f"--ttl {ttl!r}: give a positive duration (e.g. 90d) or 'never'")
    store = obj.store()
    from featurehouse.access.tokens import parse_scopes

    for scope in parse_scopes(scopes):  # push:VIEW must name a view of this project
        if scope.startswith("push:"):
            store.registry.view(scope.partition(":")[2].partition("@")[0])
    secret, record = new_token(principal, scopes, lifetime, utc_now(), local_principal(), description)
    create_token(store.catalog, store.online.client, record)
    store.audit_event("token_create", detail=f"token {record.token_id} for {record.principal}: "
                      f"{','.join(record.scopes)}")
    expires = f"expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "never expires"
    # the note to stderr, the secret alone to stdout: `TOKEN=$(featurehouse token create ...)` works
    click.echo(f"✓ token {record.token_id} for principal '{record.principal}' (scopes {', '.join(record.scopes)}; "
               f"{expires}). The secret, shown this once:", err=True)
    click.echo(secret)


@token.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired tokens.")
@click.pass_obj
def list_(obj: CliContext, show_all: bool) -> None:
    """Tokens with their principal, scopes and expiry (never their secrets)."""
    from featurehouse.access.tokens import list_tokens
    from featurehouse.clock import utc_now

    now = utc_now()
    table = Table(title="tokens", title_justify="left")
    for col in ("id", "principal", "scopes", "created", "expires", "status", "description"):
        table.add_column(col)
    for r in list_tokens(obj.store().catalog):
        status = "revoked" if r.revoked_at else ("expired" if not r.live_at(now) else "live")
        if status != "live" and not show_all:
            continue
        table.add_row(r.token_id, r.principal, ",".join(r.scopes), f"{r.created_at:%Y-%m-%d %H:%M}",
                      f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "never", status, r.description)
    obj.console.print(table)


list_.name = "list"


@token.command("revoke")
@click.argument("token_id")
@click.pass_obj
def revoke(obj: CliContext, token_id: str) -> None:
    """Revoke a token by its id (servers stop accepting it within a second)."""
    from featurehouse.access.tokens import revoke_token
    from featurehouse.clock import utc_now

    store = obj.store()
    record = revoke_token(store.catalog, store.online.client, token_id, utc_now())  # UnknownToken: exit 2
    if record.revoked_at is not None:
        obj.console.print(f"token {record.token_id} of principal '{record.principal}' was already revoked at "
                          f"{record.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
        return
    store.audit_event("token_revoke", detail=f"token {record.token_id} of {record.principal}")
    obj.console.print(f"[green]✓[/green] revoked token {record.token_id} of principal '{record.principal}'")


@click.command()
@click.option("--principal", default=None, help="Only this principal's events.")
@click.option("--feature", "view", default=None, help="Only events about this view (`view` or `view@N`).")
@click.option("--since", default=None, help="Only events since this time (ISO, UTC), or a duration ago (e.g. 24h).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON lines.")
@click.pass_obj
def audit(obj: CliContext, principal, view, since, limit: int, as_json: bool) -> None:
    """Who read or was refused which restricted (confidential, pii) features, token changes and forgets,
    newest first. Serving's events are landed from the online store into featurehouse_audit first."""
    since_at = _since(since)
    store = obj.store()
    if view:
        name, _, version = view.partition("@")
        store.registry.view(name, int(version) if version.isdigit() else None)  # an unknown view is exit 2, named
    events = store.audit(principal=principal, view=view, since=since_at, limit=limit)
    if as_json:
        for e in events:
            click.echo(json.dumps(e, default=str))
        return
    table = Table(title=f"audit: {len(events)} event(s)" + (f" of {principal}" if principal else "")
                  + (f" about {view}" if view else ""), title_justify="left")
    for col in ("at (UTC)", "principal", "action", "path", "view", "sensitivity", "model", "reads", "detail"):
        table.add_column(col, overflow="fold")
    for e in events:
        action = e["action"] if e["allowed"] else f"[red]{e['action']}[/red]"
        table.add_row(f"{e['at']:%Y-%m-%d %H:%M:%S}", e["principal"], action, e["path"] or "", e["view"] or "",
                      e["sensitivity"] or "", e["model"] or "", f"{e['reads']:,}", e["detail"] or "")
    obj.console.print(table)


def _since(text: str | None):
    from datetime import datetime

    from featurehouse.clock import utc_now
    from featurehouse.durations import parse_duration

    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        pass
    try:
        ago = parse_duration(text)
    except FeaturehouseError:
        ago = None
    if ago is None:
        raise FeaturehouseError(f"--since {text!r}: give an ISO time (2026-12-01T09:00) or a duration ago (24h)")
    return utc_now() - ago
