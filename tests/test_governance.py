"""Governance: one access policy, written in dbt, decided the same way on every path.

The project (tests/governed_project.py) has three teams, a view of every sensitivity, live and expired
grants, and a model of each team. Every cell principals x views x paths (HTTP GET, batchGet, model=,
version pins, the SDK, training sets, batch features, the dbt macro, push, the definitions API) is
allowed or denied as `may_read` - the policy written again by hand - says.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from featurehouse import FeatureStore
from featurehouse.access.policy import AccessDenied
from featurehouse.access.tokens import create_token, new_token
from featurehouse.cli.main import cli
from featurehouse.clock import utc_now
from featurehouse.online.store import RedisOnlineStore
from featurehouse.serving.app import ServeConfig, create_app
from tests.governed_project import MODELS, PRINCIPALS, TEAMS, VIEWS, entity_of, key, may_read, write_project

CELLS = list(itertools.product(PRINCIPALS, VIEWS))
MODEL_CELLS = list(itertools.product(PRINCIPALS, MODELS))


@pytest.fixture(scope="module")
def governed(tmp_path_factory, embedded_redis):
    """The project built and synced; a read token per principal, and push/admin/metrics tokens."""
    path = write_project(tmp_path_factory.mktemp("governed"))
    online = RedisOnlineStore.from_url(embedded_redis.url)
    online.client.flushdb()
    store = FeatureStore(path)
    store.use_online_store(online)
    store.build(quiet=True)
    store.sync()
    now = utc_now()
    tokens = {}
    for principal in PRINCIPALS:
        tokens[principal], record = new_token(principal, "read", timedelta(days=1), now)
        create_token(store.catalog, online.client, record)
    for name, principal, scopes, ttl in [("push-pii", "svc-growth", "push:pii_profile", timedelta(days=1)),
                                         ("push-all", "svc-risk", "push", timedelta(days=1)),
                                         ("admin", "ana", "admin,read", timedelta(days=1)),
                                         ("metrics", "rex", "metrics", timedelta(days=1)),
                                         ("expired", "ana", "read", timedelta(seconds=-1))]:
        tokens[name], record = new_token(principal, scopes, ttl, now)
        create_token(store.catalog, online.client, record)
    store.close_warehouse()
    yield store, tokens, embedded_redis.url
    store.close()


@pytest.fixture(scope="module")
def http(governed):
    store, _, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, push=True, log_sample_rate=0))
    with TestClient(app) as client:
        yield client


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_denied(response, view: str, principal: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden" and body["feature"].startswith(f"{view}@")
    assert principal in body["detail"] and "shared_with" in (body["remedy"] or "") + body["detail"]


# -- the matrix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("principal,view", CELLS)
def test_http_get_and_pinned_version_follow_the_policy(http, governed, principal, view):
    _, tokens, _ = governed
    for names in (f"{view}.f", f"{view}.f@1"):
        r = http.get(f"/v1/features/{entity_of(view)}/{key(view, 1)}", params={"names": names},
                     headers=bearer(tokens[principal]))
        if may_read(principal, view):
            assert r.status_code == 200, r.text
            assert r.json()["features"][names]["status"] != "missing"
        else:
            assert_denied(r, view, principal)


@pytest.mark.parametrize("principal,view", CELLS)
def test_http_batch_get_follows_the_policy(http, governed, principal, view):
    _, tokens, _ = governed
    names = [f"{view}.f"] + (["pub_stats.f"] if entity_of(view) == "user" else [])
    r = http.post(f"/v1/features/{entity_of(view)}:batchGet", json={"ids": [key(view, 1), key(view, 2)], "names": names},
                  headers=bearer(tokens[principal]))
    if may_read(principal, view):
        assert r.status_code == 200 and len(r.json()["vectors"]) == 2, r.text
    else:
        assert_denied(r, view, principal)


@pytest.mark.parametrize("principal,model", MODEL_CELLS)
def test_model_reads_need_the_principal_and_the_model_team(http, governed, principal, model):
    """No bypass through model=: a model's features are read only when both its team and the asker may."""
    store, tokens, _ = governed
    allowed = all(may_read(principal, f.partition(".")[0], model) for f in MODELS[model][1])
    r = http.get("/v1/features/user/1", params={"model": model}, headers=bearer(tokens[principal]))
    assert (r.status_code == 200) == allowed, r.text
    if not allowed:
        assert r.status_code == 403
    store.act_as(principal)
    try:
        if allowed:
            assert store.online_features("user", 1, model=model)[0].features
        else:
            with pytest.raises(AccessDenied):
                store.online_features("user", 1, model=model)
    finally:
        store.act_as(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("principal,view", CELLS)
def test_sdk_training_set_and_batch_features_follow_the_policy(governed, principal, view):
    store, _, _ = governed
    store.act_as(principal)
    try:
        entity, ids = entity_of(view), [key(view, 1), key(view, 2)]
        paths = [(lambda: store.online_features(entity, ids, names=[f"{view}.f"]), len, 2),
                 (lambda: store.training_set("spine", [f"{view}.f"], "as_of"), len, 3),
                 (lambda: store.batch_features(entity, ids=ids, names=[f"{view}.f"]), lambda b: b.rows, 2)]
        for path, count, rows in paths:
            if may_read(principal, view):
                assert count(path()) == rows
            else:
                with pytest.raises(AccessDenied, match=view):
                    path()
    finally:
        store.act_as(None)  # type: ignore[arg-type]
        store.close_warehouse()


@pytest.mark.parametrize("principal,model", MODEL_CELLS)
def test_training_sets_for_a_model_are_checked_against_its_team(governed, principal, model):
    store, _, _ = governed
    allowed = all(may_read(principal, f.partition(".")[0], model) for f in MODELS[model][1])
    store.act_as(principal)
    try:
        if allowed:
            assert len(store.training_set("spine", list(MODELS[model][1]), "as_of", model=model)) == 3
        else:
            with pytest.raises(AccessDenied):
                store.training_set("spine", list(MODELS[model][1]), "as_of", model=model)
    finally:
        store.act_as(None)  # type: ignore[arg-type]
        store.close_warehouse()


# -- HTTP: tokens, scopes, what a refusal tells ---------------------------------------------------------


def test_a_request_without_a_valid_token_is_401(http, governed):
    _, tokens, _ = governed
    url = "/v1/features/user/1?names=pub_stats.f"
    for headers, says in [({}, "send Authorization: Bearer"), (bearer("nonsense"), "malformed token"),
                          (bearer("fht_000000000000_" + "x" * 43), "unknown or revoked"),
                          (bearer(tokens["expired"]), "expired"), ({"Authorization": f"Basic {tokens['ana']}"}, "Bearer")]:
        r = http.get(url, headers=headers)
        assert r.status_code == 401 and says in r.json()["detail"], (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    # a token in the query string is refused even when valid: query strings end up in logs
    r = http.get(f"{url}&access_token={tokens['ana']}")
    assert r.status_code == 401 and "query string" in r.json()["detail"]


def test_a_known_id_with_a_wrong_secret_is_told_apart_from_nothing(http, governed):
    """Unknown id and wrong secret get the same answer: a guess learns nothing about which ids exist."""
    _, tokens, _ = governed
    known_id = tokens["ana"].split("_")[1]
    wrong = http.get("/v1/features/user/1?names=pub_stats.f", headers=bearer(f"fht_{known_id}_{'y' * 43}"))
    unknown = http.get("/v1/features/user/1?names=pub_stats.f", headers=bearer(f"fht_ffffffffffff_{'y' * 43}"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_a_denial_does_not_say_whether_the_entity_exists(http, governed):
    _, tokens, _ = governed
    there = http.get("/v1/features/user/1?names=pii_profile.f", headers=bearer(tokens["rex"]))
    absent = http.get("/v1/features/user/987654?names=pii_profile.f", headers=bearer(tokens["rex"]))
    assert there.status_code == absent.status_code == 403
    assert there.json() == absent.json()


def test_push_needs_the_push_scope_for_that_view(http, governed):
    _, tokens, _ = governed
    row = [{"user_id": 9, "event_time": utc_now().isoformat(), "f": 1.0}]
    assert http.post("/v1/push/pii_profile", json=row, headers=bearer(tokens["push-pii"])).status_code == 202
    assert http.post("/v1/push/conf_scores", json=row, headers=bearer(tokens["push-all"])).status_code == 202
    denied = http.post("/v1/push/conf_scores", json=row, headers=bearer(tokens["push-pii"]))
    assert denied.status_code == 403 and "push:conf_scores" in denied.json()["detail"]
    assert http.post("/v1/push/pub_stats", json=row, headers=bearer(tokens["ana"])).status_code == 403
    assert http.post("/v1/push/pub_stats", json=row).status_code == 401


def test_the_push_route_is_off_in_serve_unless_enabled(governed):
    store, tokens, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    with TestClient(app) as client:
        r = client.post("/v1/push/pub_stats", json=[], headers=bearer(tokens["push-all"]))
        assert r.status_code == 404


def test_definitions_need_admin_to_register_and_read_to_list(http, governed):
    _, tokens, _ = governed
    body = {"name": "new_view", "version": 1, "entity": "user", "features": [{"name": "x", "type": "bigint"}]}
    assert http.post("/v1/feature-definitions", json=body, headers=bearer(tokens["ana"])).status_code == 403
    registered = http.post("/v1/feature-definitions", json=body, headers=bearer(tokens["admin"]))
    assert registered.status_code not in (401, 403), registered.text
    assert http.get("/v1/feature-definitions", headers=bearer(tokens["rex"])).status_code == 200
    assert http.get("/v1/feature-definitions").status_code == 401


def test_metrics_need_a_metrics_token_and_health_needs_none(http, governed):
    _, tokens, _ = governed
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=bearer(tokens["ana"])).status_code == 403
    assert http.get("/metrics", headers=bearer(tokens["metrics"])).status_code == 200
    assert http.get("/healthz").status_code == 200 and http.get("/readyz").status_code == 200


def test_refused_requests_are_counted_in_metrics_by_status_and_route_without_ids(http, governed):
    _, tokens, _ = governed

    def refused() -> dict[str, float]:
        text = http.get("/metrics", headers=bearer(tokens["metrics"])).text
        return {line.split("{", 1)[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("featurehouse_requests_refused_total{")}

    before = refused()
    assert http.get("/v1/features/user/secret-id-1", headers=bearer("fh_nope")).status_code == 401
    assert http.get("/v1/features/user/secret-id-2").status_code == 401
    assert http.get("/metrics", headers=bearer(tokens["ana"])).status_code == 403
    after = refused()
    grew = {labels: after[labels] - before.get(labels, 0) for labels in after if after[labels] != before.get(labels, 0)}
    assert grew == {'route="/v1/features/…",status="401"': 2, 'route="/metrics",status="403"': 1}
    assert "secret-id" not in http.get("/metrics", headers=bearer(tokens["metrics"])).text


def test_a_revoked_token_stops_working_within_the_refresh(governed):
    store, _, url = governed
    from featurehouse.access.tokens import revoke_token

    secret, record = new_token("ana", "read", None, utc_now())
    create_token(store.catalog, store.online.client, record)
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    app.auth.refresh_s = 0
    with TestClient(app) as client:
        assert client.get("/v1/features/user/1?names=pub_stats.f", headers=bearer(secret)).status_code == 200
        revoke_token(store.catalog, store.online.client, record.token_id, utc_now())
        assert client.get("/v1/features/user/1?names=pub_stats.f", headers=bearer(secret)).status_code == 401
    store.close_warehouse()


def test_tokens_are_stored_only_as_salted_hashes(governed):
    store, tokens, _ = governed
    secret = tokens["ana"].split("_", 2)[2]
    stored = store.online.client.hgetall("fh:tokens")
    rows = [str(r) for r in store.catalog.rows(__import__("featurehouse.catalog", fromlist=["TOKENS"]).TOKENS)]
    store.close_warehouse()
    assert stored and rows
    assert not any(secret.encode() in v for v in stored.values())
    assert not any(secret in r for r in rows)


# -- the policy in dbt: check, explain, and the macro ---------------------------------------------------


def test_access_explain_says_why(governed):
    store, _, _ = governed
    runner = CliRunner()
    project = str(store.project.dir)  # type: ignore[union-attr]
    store.close_warehouse()
    denied = runner.invoke(cli, ["--project-dir", project, "access", "explain", "rex", "pii_profile.f"])
    assert denied.exit_code == 1 and "expired on" in denied.output and "extend `until`" in denied.output
    allowed = runner.invoke(cli, ["--project-dir", project, "access", "explain", "ana", "pii_profile"])
    assert allowed.exit_code == 0 and "shared with team 'risk'" in allowed.output
    for principal in PRINCIPALS:
        out = runner.invoke(cli, ["--project-dir", project, "access", "explain", principal, "fraud_model", "--json"])
        decisions = json.loads(out.output)
        assert {d["view"] for d in decisions} == {f"{f.partition('.')[0]}@1" for f in MODELS["fraud_model"][1]}
        for d in decisions:
            assert d["allowed"] == may_read(principal, d["view"].partition("@")[0], "fraud_model"), d
        assert out.exit_code == (0 if all(d["allowed"] for d in decisions) else 1)


def test_check_fails_when_a_model_uses_a_feature_its_team_may_not_read(tmp_path, embedded_redis):
    leaky = """\
  - name: leaky_model
    type: ml
    owner: {name: recsys}
    meta:
      featurehouse:
        team: recsys
        features: [pub_stats.f, pii_profile.f]
"""
    path = write_project(tmp_path, extra_exposures=leaky)
    store = FeatureStore(path)
    try:
        store.build(quiet=True)
        denied, access_warnings = store.access_violations()
    finally:
        store.close()
    assert [(d.model, d.view) for d in denied] == [("leaky_model", "pii_profile@1")]
    assert [w for w in access_warnings if "expired" in w] and all("pii_profile@1" in w for w in access_warnings)
    result = subprocess.run([sys.executable, "-m", "featurehouse.cli.main", "--project-dir", str(path), "check"],
                            capture_output=True, text=True, env={**__import__("os").environ,
                                                                 "FEATUREHOUSE_REDIS_URL": embedded_redis.url})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "leaky_model" in result.stdout and "pii_profile@1" in result.stdout


def test_the_macro_fails_compilation_for_a_team_without_access(governed):
    store, _, _ = governed
    project = store.project
    assert project is not None
    training = project.dir / "models" / "leaky_training.sql"
    training.write_text("{{ featurehouse.point_in_time_join(spine=ref('spine'), timestamp='as_of', "
                        "features=['pii_profile.f'], exposure='rec_model') }}\n")
    fine = project.dir / "models" / "fraud_training.sql"
    fine.write_text("{{ featurehouse.point_in_time_join(spine=ref('spine'), timestamp='as_of', "
                    "features=['pii_profile.f', 'conf_scores.f'], exposure='fraud_model') }}\n")
    store.close_warehouse()
    try:
        from featurehouse.errors import ProjectError

        with pytest.raises(ProjectError, match="is for exposure 'rec_model' of team 'recsys'.*pii_profile"):
            project.run_dbt(["compile", "--select", "leaky_training"])
        project.run_dbt(["compile", "--select", "fraud_training"])
    finally:
        training.unlink()
        fine.unlink()


def test_the_jinja_policy_agrees_with_the_python_policy(tmp_path):
    """The Jinja twin (macros/access.sql) and featurehouse/access/policy.py decide every team x view alike, on
    60 generated views: every sensitivity, owners, grants ending in the past, today, the future, or never."""
    rng = random.Random(11)
    sensitivities = ["public", "internal", "confidential", "pii"]
    views = {f"v{i}": (rng.choice(sensitivities), rng.choice(list(TEAMS)),
                       [(team, rng.choice([-400, -1, 0, 1, 30])) for team in rng.sample(list(TEAMS), rng.randint(0, 3))])
             for i in range(60)}
    path = write_project(tmp_path, views=views, models={})
    (path / "macros").mkdir()
    (path / "macros" / "fh_decisions.sql").write_text("""{% macro fh_decisions() %}
  {%- set out = {} -%}
  {%- for node in featurehouse.feature_view_nodes() -%}{%- for team in var('featurehouse').teams -%}
    {%- do out.update({team ~ '|' ~ node.name: featurehouse.team_may_read(team, node)}) -%}
  {%- endfor -%}{%- endfor -%}
  {{ print('FH_DECISIONS=' ~ tojson(out)) }}
{% endmacro %}""")
    store = FeatureStore(path)
    try:
        registry = store.registry  # parsed (dbt deps + parse); the views are not built, their YAML types them
        assert store.project is not None
        result = subprocess.run([sys.executable, "-c", "from dbt.cli.main import cli; cli()", "run-operation",
                                 "fh_decisions", *store.project.dbt_args()], capture_output=True, text=True, cwd=path)
        day = utc_now().date()
        python = {f"{team}|{view}": store.policy.decide(TEAMS[team][0], registry.view(view), day).allowed
                  for team in TEAMS for view in views}
    finally:
        store.close()
    line = next((ln for ln in result.stdout.splitlines() if "FH_DECISIONS=" in ln), None)
    assert line is not None, result.stdout + result.stderr
    jinja = json.loads(line.split("FH_DECISIONS=", 1)[1])
    assert jinja == python
    assert 0 < sum(python.values()) < len(python)  # both answers occur, or this would prove little


# -- audit --------------------------------------------------------------------------------------------


def test_reads_of_restricted_features_denials_and_refusals_are_audited(governed):
    """Served pii reads land with pseudonyms of the entities (never their ids), denials and refusals in full."""
    from featurehouse.access.audit import audit_key, pseudonym

    store, tokens, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    with TestClient(app) as client:  # leaving it flushes the worker's audit buffer
        for _ in range(3):
            assert client.get("/v1/features/user/3?names=pii_profile.f", headers=bearer(tokens["ana"])).status_code == 200
        assert client.post("/v1/features/user:batchGet", json={"ids": [1, 2], "names": ["conf_scores.f"]},
                           headers=bearer(tokens["gil"])).status_code == 200
        assert client.get("/v1/features/user/3?names=pii_profile.f", headers=bearer(tokens["rex"])).status_code == 403
        assert client.get("/v1/features/user/3?names=pub_stats.f").status_code == 401
        assert client.get("/v1/features/user/3?names=pub_stats.f", headers=bearer(tokens["rex"])).status_code == 200
    events = store.audit(since=utc_now() - timedelta(minutes=5))
    store.close_warehouse()
    reads = [e for e in events if e["action"] == "read" and e["path"] == "http"]
    pii = next(e for e in reads if e["principal"] == "ana" and e["view"] == "pii_profile@1")
    key = audit_key(store.online.client)
    assert key is not None and pii["reads"] == 3 and pii["sensitivity"] == "pii"
    assert pii["entity_ref"] == pseudonym(key, "user", ("3",)) and "3" != pii["entity_ref"]
    assert pii["purpose"] == "use 3"  # read under risk's grant on pii_profile: its purpose is recorded
    confidential = next(e for e in reads if e["principal"] == "gil" and e["view"] == "conf_scores@1")
    assert confidential["reads"] == 2 and confidential["entity_ref"] is None  # counted, no entities
    assert confidential["purpose"] == "use 2"
    assert not any(e["view"] == "pub_stats@1" for e in events)  # public reads are not audited
    denied = next(e for e in events if e["action"] == "denied" and e["principal"] == "rex")
    assert denied["view"] == "pii_profile@1" and not denied["allowed"] and "expired" in denied["detail"]
    refused = next(e for e in events if e["action"] == "refused")
    assert refused["principal"] == "unauthenticated" and "Authorization" in refused["detail"]


def test_sdk_training_set_and_token_changes_are_audited(governed):
    store, _, _ = governed
    store.act_as("svc-risk")
    try:
        store.online_features("user", [1, 2], names=["pii_profile.f"])
        store.training_set("spine", ["conf_scores.f"], "as_of")
        store.flush_audit()
        store.act_as("rex")
        with pytest.raises(AccessDenied):
            store.batch_features("user", ids=[1], names=["pub_stats.f", "pii_profile.f"])
    finally:
        store.act_as(None)  # type: ignore[arg-type]
    project = str(store.project.dir)  # type: ignore[union-attr]
    store.close_warehouse()
    created = CliRunner().invoke(cli, ["--project-dir", project, "token", "create", "--principal", "svc-x", "--ttl", "1d"])
    assert created.exit_code == 0, created.output
    token_id = created.output.strip().splitlines()[-1].split("_")[1]
    assert CliRunner().invoke(cli, ["--project-dir", project, "token", "revoke", token_id]).exit_code == 0
    events = store.audit(since=utc_now() - timedelta(minutes=5))
    store.close_warehouse()
    mine = {(e["principal"], e["action"], e["path"], e["view"]) for e in events if e["principal"] == "svc-risk"}
    assert ("svc-risk", "read", "sdk", "pii_profile@1") in mine
    assert ("svc-risk", "training_set", "training_set", "conf_scores@1") in mine
    assert ("rex", "denied", "batch", "pii_profile@1") in {(e["principal"], e["action"], e["path"], e["view"])
                                                             for e in events}
    assert {e["action"] for e in events if token_id in (e["detail"] or "")} == {"token_create", "token_revoke"}
    listing = CliRunner().invoke(cli, ["--project-dir", project, "audit", "--principal", "svc-risk", "--since", "1h"])
    assert listing.exit_code == 0 and "pii_profile@1" in listing.output and "training_set" in listing.output


def test_forget_unlinks_the_entity_from_the_audit_log(governed):
    """Last in this module: it forgets user 3."""
    from featurehouse.access.audit import audit_key, pseudonym

    store, tokens, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    with TestClient(app) as client:
        assert client.get("/v1/features/user/3?names=pii_profile.f", headers=bearer(tokens["gil"])).status_code == 200
    ref = pseudonym(audit_key(store.online.client), "user", ("3",))  # type: ignore[arg-type]
    before = [e for e in store.audit() if ref in (e["entity_ref"] or "")]
    result = store.forget("user", ("3",))
    after = store.audit()
    store.close_warehouse()
    assert before and result.audit_refs_redacted >= len(before)
    assert not any(ref in (e["entity_ref"] or "") for e in after)
    assert any("forgotten" in (e["entity_ref"] or "") for e in after)
    assert any(e["action"] == "forget" and e["entity_type"] == "user" for e in after)


@pytest.mark.parametrize("command", [["serve", "--host", "0.0.0.0"], ["push-api", "--host", "0.0.0.0", "--auth", "none"]])
def test_auth_none_is_refused_off_loopback(tmp_path, monkeypatch, command):
    monkeypatch.setenv("FEATUREHOUSE_AUTH", "none")
    (tmp_path / "dbt_project.yml").write_text("name: p\nversion: '1'\nconfig-version: 2\n")
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), *command])
    assert result.exit_code == 2, result.output
    assert "auth: none is allowed only on a loopback address" in result.output and "0.0.0.0" in result.output


# -- found in review: each of these read a restricted feature without the decision ---------------------------


def test_a_comma_separated_feature_string_is_decided_like_a_list(governed):
    store, _, _ = governed
    store.act_as("rex")
    try:
        for features in ("pii_profile.f", "pub_stats.f,pii_profile.f", " pii_profile.f "):
            with pytest.raises(AccessDenied, match="pii_profile"):
                store.training_set("spine", features, "as_of")  # type: ignore[arg-type]
    finally:
        store.act_as(None)  # type: ignore[arg-type]
        store.close_warehouse()


def test_training_set_as_model_is_decided_and_names_its_exposure(governed, monkeypatch):
    store, _, _ = governed
    project = store.project
    assert project is not None
    store.close_warehouse()
    monkeypatch.setenv("FEATUREHOUSE_PRINCIPAL", "rex")
    denied = CliRunner().invoke(cli, ["--project-dir", str(project.dir), "training-set", "--model", "rec_model",
                                      "--features", "pii_profile.f", "--as-model", "leak_training"])
    assert denied.exit_code == 2 and "pii_profile" in denied.output
    assert not (project.dir / "models" / "training" / "leak_training.sql").exists()
    monkeypatch.setenv("FEATUREHOUSE_PRINCIPAL", "ana")
    written = CliRunner().invoke(cli, ["--project-dir", str(project.dir), "training-set", "--model", "fraud_model",
                                       "--as-model", "fraud_training_set"])
    path = project.dir / "models" / "training" / "fraud_training_set.sql"
    try:
        assert written.exit_code == 0, written.output
        assert "exposure='fraud_model'" in path.read_text()
    finally:
        path.unlink(missing_ok=True)


def test_a_root_path_does_not_hide_a_route_from_its_scope(governed):
    store, tokens, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    with TestClient(app, root_path="/fh") as client:
        assert client.get("/fh/v1/features/user/1?names=pub_stats.f", headers=bearer(tokens["push-all"])).status_code == 403
        assert client.get("/fh/metrics", headers=bearer(tokens["ana"])).status_code == 403
        assert client.post("/fh/v1/feature-definitions", json={}, headers=bearer(tokens["metrics"])).status_code == 403
        assert client.get("/fh/healthz").status_code == 200
        assert client.get("/fh/v1/features/user/1?names=pub_stats.f", headers=bearer(tokens["ana"])).status_code == 200


def test_refusals_are_audited_by_route_without_the_ids_asked_for(governed):
    store, _, url = governed
    app = create_app(store.registry, ServeConfig(redis_url=url, log_sample_rate=0))
    with TestClient(app) as client:
        for i in range(50):
            assert client.get(f"/v1/features/user/alice{i}@example.com?names=pub_stats.f").status_code == 401
        assert client.get("/v1/features/user/1?names=pub_stats.f&%74oken=x").status_code == 401
    events = [e for e in store.audit(since=utc_now() - timedelta(minutes=5)) if e["action"] == "refused"]
    store.close_warehouse()
    assert not any("example.com" in (e["detail"] or "") for e in events)
    assert sum(e["reads"] for e in events if "GET /v1/features/…" in e["detail"]) >= 51


def test_every_pii_entity_read_is_listed_even_past_the_per_event_cap(governed):
    from featurehouse.access import audit as audit_module
    from featurehouse.access.audit import AuditBuffer

    store, _, _ = governed
    buffer = AuditBuffer("test")
    buffer.key = b"k" * 32
    view = store.registry.view("pii_profile")
    cap = audit_module.MAX_REFS
    for start in range(0, cap + 5, 1000):
        buffer.note_reads("ana", [view], "user", [(str(i),) for i in range(start, start + 1000)], None)
    buffer.note_reads("ana", [view], "user", [("target",)], None)
    events = buffer.drain()
    listed = {ref for e in events for ref in (e.entity_ref or "").split()}
    assert audit_module.pseudonym(buffer.key, "user", ("target",)) in listed
    total = len(range(0, cap + 5, 1000)) * 1000 + 1
    assert sum(e.reads for e in events) == total and len(listed) == total  # every read counted, every entity listed


def test_composite_key_pseudonyms_do_not_collide():
    from featurehouse.access.audit import pseudonym

    assert pseudonym(b"k", "pair", ("a|b", "c")) != pseudonym(b"k", "pair", ("a", "b|c"))


def test_a_grant_until_must_be_a_plain_date(tmp_path):
    from featurehouse.errors import InvalidFeatureMetadata
    from featurehouse.registry.manifest import parse_grants
    from featurehouse.registry.model import Team

    teams = {"risk": Team("risk", ("ana",))}
    with pytest.raises(InvalidFeatureMetadata, match="YYYY-MM-DD"):
        parse_grants("m", [{"team": "risk", "purpose": "x", "until": "20270630"}], teams)
    assert parse_grants("m", [{"team": "risk", "purpose": "x", "until": "2027-06-30"}], teams)[0].until.isoformat() \
        == "2027-06-30"


def test_check_follows_an_exposure_through_the_training_model_it_depends_on(tmp_path):
    """A training model joins pii_profile without naming an exposure; rec_model (recsys) depends on it: the macro
    refuses to compile it, and `check` says so before anyone builds."""
    leaky = """\
  - name: leaky_rec_model
    type: ml
    owner: {name: recsys}
    depends_on: [ref('rec_training')]
    meta:
      featurehouse:
        team: recsys
        features: [pub_stats.f]
"""
    path = write_project(tmp_path, extra_exposures=leaky)
    (path / "models" / "rec_training.sql").write_text(
        "{{ featurehouse.point_in_time_join(spine=ref('spine'), timestamp='as_of', features=['pii_profile.f']) }}\n")
    store = FeatureStore(path)
    try:
        denied, _ = store.access_violations()
    finally:
        store.close()
    assert [(d.model, d.view) for d in denied] == [("leaky_rec_model", "pii_profile@1")]


def test_check_warns_of_grants_that_change_nothing_or_expired(tmp_path):
    views = {"open_stats": ("internal", "risk", [("growth", 10)]), "own": ("pii", "risk", [("risk", 10)]),
             "old": ("confidential", "risk", [("growth", -3)])}
    path = write_project(tmp_path, views=views, models={})
    store = FeatureStore(path)
    try:
        denied, warnings = store.access_violations()
    finally:
        store.close()
    assert not denied
    assert any("open_stats@1" in w and "changes nothing" in w for w in warnings)
    assert any("own@1" in w and "owner team" in w for w in warnings)
    assert any("old@1" in w and "expired" in w for w in warnings)
