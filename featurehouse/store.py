"""FeatureStore: the Python entry point over a dbt project."""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from featurehouse.catalog import DEFAULT_SCHEMA, Catalog
from featurehouse.offline.training_set import Progress, TrainingSet, build_training_set
from featurehouse.offline.warehouse import Warehouse, warehouse_for_target
from featurehouse.project import DbtProject
from featurehouse.registry.model import Registry, Relation


def _warn_if_moved(catalog: Catalog) -> None:
    """A project that names a new schema for featurehouse's tables starts an empty catalog: its sync
    runs, published schemas and version log stay where they were. Say so rather than let `check`
    treat published versions as new."""
    import warnings

    from featurehouse.catalog import SYNC_RUNS

    if catalog.schema == DEFAULT_SCHEMA or catalog.exists(SYNC_RUNS):
        return
    if Catalog(catalog.warehouse, DEFAULT_SCHEMA).exists(SYNC_RUNS):
        warnings.warn(f"vars.featurehouse.schema is '{catalog.schema}', which holds no featurehouse tables yet, while "
                      f"'{DEFAULT_SCHEMA}' does: history there (published schemas, sync runs, the version log) is "
                      f"not read; move its featurehouse_* tables to '{catalog.schema}' to keep it", stacklevel=3)


def _one_of(names, features):
    """`names=` and `features=` are the same argument (serving says names, training sets features)."""
    if names is not None and features is not None:
        from featurehouse.errors import InvalidRequest

        raise InvalidRequest("give names= or features=, not both")
    return names if names is not None else features


def _flush_audit_at_exit(ref) -> None:
    store = ref()
    if store is not None and store._online is not None:
        try:
            store.flush_audit()
        except Exception:  # noqa: BLE001 - at exit there is no one to raise to; the warning says what was lost
            import sys

            print("featurehouse: audit events of this process's reads were not written (online store unreachable)",
                  file=sys.stderr)


def _feature_list(features: Sequence[str] | str) -> list[str]:
    """Feature names as the training set reads them: a list, or one comma-separated string."""
    if isinstance(features, str):
        return [f.strip() for f in features.split(",") if f.strip()]
    return list(features)


def _views_of(registry: Registry, features: Sequence[str]) -> list:
    """The views (at the versions named or active) that feature names read: every name must resolve (an unknown
    one is an error naming it), so no view escapes the access decision."""
    views = {}
    for text in features:
        view, _ = registry.resolve(text)
        views[view.versioned_name] = view
    return list(views.values())


def _name_version(text: str) -> tuple[str, int | None]:
    name, _, version = text.partition("@")
    return name, int(version) if version.isdigit() else None


class FeatureStore:
    """Features of one dbt project: its registry (from the manifest) and its offline store."""

    log_sample_rate: float = 0.01  # share of in-process vectors logged for skew and drift (0 turns it off)

    def __init__(self, project_dir: str | os.PathLike = ".", target: str | None = None,
                 profiles_dir: str | os.PathLike | None = None):
        self.project: DbtProject | None = DbtProject(project_dir, profiles_dir, target)
        self._catalog: Catalog | None = None
        self._warehouse: Warehouse | None = None
        self._online = None
        self._registry: Registry | None = None
        self._principal: str | None = None
        self._near_cache = None
        self._replicas = None

    @classmethod
    def from_registry(cls, registry: Registry, warehouse: Warehouse) -> "FeatureStore":
        """A store over a registry built by hand (tests, benchmarks): no dbt project involved."""
        store = cls.__new__(cls)
        store.project, store._warehouse, store._registry, store._catalog = None, warehouse, registry, None
        store._online, store._principal, store._near_cache, store._replicas = None, None, None, None
        return store

    # -- access -------------------------------------------------------------------------------

    @property
    def principal(self) -> str:
        """Who this process reads for: `act_as(...)`, else FEATUREHOUSE_PRINCIPAL, else the OS user."""
        if self._principal is None:
            from featurehouse.access.tokens import local_principal

            self._principal = local_principal()  # looked up once: reads go through here on the hot path
        return self._principal

    def act_as(self, principal: str | None) -> None:
        """Read for this principal (a service account, say): the policy decides for it on every path. None goes back
        to FEATUREHOUSE_PRINCIPAL or the OS user."""
        self._principal = principal
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.authorize.cache_clear()

    @property
    def policy(self):
        """The access policy (featurehouse/access/policy.py) of this project's registry."""
        from featurehouse.access.policy import Policy

        if getattr(self, "_policy", None) is None or self._policy.registry is not self.registry:
            self._policy = Policy(self.registry)
        return self._policy

    def authorize(self, views, model: str | None = None, path: str = "sdk") -> None:
        """AccessDenied for the first view the principal (reading for `model`) may not read; the denial is audited."""
        from featurehouse.access.policy import AccessDenied
        from featurehouse.clock import utc_now

        spec = self.registry.model(model.partition("@")[0]) if model else None
        day = utc_now().date()
        for view in views:
            d = self.policy.decide(self.principal, view, day, spec)
            if not d.allowed:
                self.audit_event("denied", path=path, view=d.view, sensitivity=d.sensitivity, allowed=False,
                                 model=d.model, detail=d.reason)
                raise AccessDenied(d)

    def audit_event(self, action: str, **fields) -> None:
        """Record an event in the warehouse's audit log (featurehouse_audit) for this principal. The action it
        records has happened: a failure to record warns and is not raised."""
        from featurehouse.access.audit import AuditEvent, record_events

        try:
            record_events(self.catalog, [AuditEvent(self.principal, action, **{"path": "cli", **fields})])
        except Exception as e:  # noqa: BLE001 - any engine's error; the action itself stands
            import warnings

            warnings.warn(f"audit event '{action}' not recorded: {type(e).__name__}: {e}", stacklevel=2)

    def _audit_restricted(self, action: str, views, reads: int, model: str | None, path: str,
                          entity_type: str | None = None) -> None:
        from featurehouse.clock import utc_now
        from featurehouse.registry.model import RESTRICTED

        spec = self.registry.models.get(model.partition("@")[0]) if model else None
        for view in views:
            if view.sensitivity in RESTRICTED:
                grant = self.policy.decide(self.principal, view, utc_now().date(), spec).grant
                self.audit_event(action, path=path, view=view.versioned_name, sensitivity=view.sensitivity,
                                 model=model, reads=reads, entity_type=entity_type,
                                 purpose=grant.purpose if grant else None)

    def audit(self, principal: str | None = None, view: str | None = None, since=None, limit: int = 1000) -> list[dict]:
        """Audit events, newest first (`featurehouse audit`); serving's events are landed from the online store first."""
        from featurehouse.access.audit import land_audit, read_events

        self.flush_audit()
        land_audit(self.online.client, self.catalog)
        return read_events(self.catalog, principal, view, since, limit)

    def flush_audit(self) -> None:
        """This process's buffered reads of restricted views, to the audit stream."""
        from featurehouse.access.audit import write_events

        reader = getattr(self, "_reader", None)
        if reader is not None and reader.audit:
            write_events(self.online.client, reader.audit.drain())
            self._audit_flushed = time.monotonic()

    def explain_access(self, principal: str, target: str) -> list:
        """Decisions for `principal` reading a feature (`view.column[@N]`), a view (`view[@N]`) or every
        feature of a model (an exposure name): allowed or denied, and why."""
        from featurehouse.clock import utc_now

        day = utc_now().date()
        name = target.partition("@")[0]
        if name in self.registry.models and "." not in name:
            spec = self.registry.model(name)
            views = {self.registry.resolve(f)[0].versioned_name: self.registry.resolve(f)[0] for f in spec.features}
            return [self.policy.decide(principal, v, day, spec) for _, v in sorted(views.items())]
        if "." in target:
            view, _ = self.registry.resolve(target)
        else:
            from featurehouse.errors import UnknownFeature

            try:
                view = self.registry.view(*_name_version(target))
            except UnknownFeature as e:
                models = ", ".join(sorted(self.registry.models)) or "none"
                raise UnknownFeature(f"{e}; nor is '{target}' a model (models: {models})") from None
        return [self.policy.decide(principal, view, day)]

    # -- offline store ------------------------------------------------------------------------

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            assert self.project is not None
            target = self.project.target()
            self._warehouse = warehouse_for_target(target.type, target.settings, self.project.dir)
        return self._warehouse

    @property
    def catalog_schema(self) -> str:
        """Where featurehouse keeps its own tables: `vars.featurehouse.schema`, default featurehouse."""
        schema = self.project.featurehouse_vars.get("schema") if self.project is not None else None
        return str(schema or DEFAULT_SCHEMA)

    @property
    def catalog(self) -> Catalog:
        """featurehouse's own tables in the warehouse (featurehouse/catalog), in `catalog_schema`."""
        if self._catalog is None or self._catalog.warehouse is not self.warehouse:
            self._catalog = Catalog(self.warehouse, self.catalog_schema)
            _warn_if_moved(self._catalog)
        return self._catalog

    def close(self) -> None:
        """Release the warehouse connection (DuckDB allows one writer process at a time) and the online store."""
        self.close_warehouse()
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None
        if self._online is not None and getattr(self, "_served_log", None) is not None:
            try:
                self._served_log.close(self._online.client)
            except Exception:  # noqa: BLE001 - a store that went away costs the buffered samples only
                pass
            try:
                self.flush_audit()
            except Exception:  # noqa: BLE001 - as above: the buffered audit counts are lost, and said so
                import warnings

                warnings.warn("audit events of this process's reads were not written: the online store is unreachable",
                              stacklevel=2)
        if self._online is not None:
            self._online.close()
            self._online = None

    # -- online store -------------------------------------------------------------------------

    @property
    def online(self):
        """The online store: FEATUREHOUSE_REDIS_URL, else an embedded Redis under <project>/.featurehouse/."""
        if self._online is None:
            from featurehouse.online.store import open_online_store

            self._online = open_online_store(self.project.dir if self.project else None)
        return self._online

    def use_online_store(self, online) -> None:
        """Use this online store (e.g. a RedisOnlineStore on a test server) instead of the default."""
        self._online = online

    def online_views(self, select: Sequence[str] = ()) -> list:
        """The active version of every view marked online; `select` names views (`view` or `view@N`) instead."""
        names = list(select) or [n for n in self.registry.view_names() if self.registry.view(n).online]
        return [self.registry.view(*_name_version(n)) for n in names]

    def sync(self, select: Sequence[str] = (), full_refresh: bool = False, progress=None,
             restate: Sequence[str] = ()) -> list:
        """Push the latest value per entity of each online view to the online store; one SyncRun per view.

        A view named in `restate` (`view` or `view@N`), or declaring `meta.featurehouse.restatement`
        whose SQL changed since its last sync, is restated: every row is read again and stored values
        that differ at an equal event time and created_at are replaced (a corrected view, same version).
        `progress(view, rows_done, rows_total)` is called from the thread that runs the sync; on DuckDB a large
        table is read in parts, and rows_total is then an estimate until the last part is read."""
        from featurehouse.sync.batch import sync_view
        from featurehouse.sync.runs import SyncRunLog

        self.attach_stream_tables()
        self.registry.active.update(self._read_active_versions())  # a promote by another process counts
        for name in restate:
            self.registry.view(*_name_version(name))  # an unknown view is an error naming it
        log = SyncRunLog(self.catalog)
        log.remember(self.online.store_id())  # every view's last runs in two queries, not three per view
        policy = self.sync_policy
        changed = self._logic_changed()  # a declared restatement applies once: until published anew
        built = self.project.built_at if self.project is not None else (lambda _uid: None)
        runs = []
        for view in self.online_views(select):
            run = sync_view(self.warehouse, self.online, log, view, full_refresh=full_refresh, progress=progress,
                            rebuilt_at=None if view.created_at else built(view.unique_id), policy=policy,
                            restate=view.name in restate or view.versioned_name in restate
                            or (view.restatement is not None and (view.name, view.version) in changed))
            runs.append(run)
            self.publish(view, "sync")
            if (view.name, view.version) in changed and run.mode != "restate":
                run.warning = (f"{view.versioned_name}: its SQL changed since it was published, without a new version "
                               "or a declared restatement: values already online keep the old logic "
                               "(`featurehouse check` says what to do)")
            if run.mode == "restate":
                from featurehouse.offline.published import PublishedSchemas

                PublishedSchemas(self.catalog).restate(view)
        self.publish_active_versions()
        repaired = [run.repaired_since for run in runs if run.repaired_since is not None]
        if repaired:  # a store restored from an older state holds again the entities forgotten since
            from featurehouse.sync.forget import forget_online_again

            forget_online_again(self.online, self.registry, self.catalog, since=min(repaired))
        return runs

    def _logic_changed(self) -> set[tuple[str, int]]:
        """Published view versions whose SQL changed since (featurehouse/guard/logic_gate.py)."""
        from featurehouse.guard.logic_gate import logic_changes
        from featurehouse.offline.published import read_published

        return {(c.view, c.version) for c in logic_changes(self.registry, read_published(self.catalog))}

    def publish_active_versions(self) -> dict[str, int]:
        """Tell the online store which version of every view is active, as the warehouse's version log
        says, and which API tokens are live: serving reads both, so a wiped or restored store is whole
        again after one sync (and a token revoked since a restore stays revoked)."""
        from featurehouse.access.audit import audit_key
        from featurehouse.access.tokens import publish_tokens
        from featurehouse.clock import utc_now

        active = {name: self.registry.active_version(name) for name in self.registry.view_names()}
        self.online.set_active_versions(active)
        publish_tokens(self.catalog, self.online.client, utc_now())
        audit_key(self.online.client, create=True)
        return active

    def publish(self, view, by: str) -> bool:
        """Fix view@version's schema as published (first time only); `featurehouse check` guards it."""
        from featurehouse.offline.published import PublishedSchemas

        return PublishedSchemas(self.catalog).publish(view, by)

    # -- serving ------------------------------------------------------------------------------

    def online_features(self, entity_type: str, ids, names=None, model: str | None = None, *, features=None):
        """Feature vectors from the online store, in-process: values with event time, age and staleness.

        `ids` are entity keys as text (`42`, or `card_id=1;merchant_id=7`); `names` are features
        (`view.column[@N]`), or `model` names an exposure (or `NAME@VERSION` a registered model version)
        whose features of this entity type are read. A sample of the vectors (`log_sample_rate`, 1% by
        default, as in `featurehouse serve`) is logged for `featurehouse skew` and `drift`, 100 at a time.
        `features=` is accepted for `names=`, as training_set calls them.
        """
        names = _one_of(names, features)
        if getattr(self, "_reader", None) is None:
            import atexit
            import weakref

            from featurehouse.access.audit import AuditBuffer, audit_key
            from featurehouse.serving.reader import OnlineReader
            from featurehouse.serving.served_log import ServedLog

            self._reader = OnlineReader(self.registry, self.online.client)
            self._reader.near_cache = self._near_cache
            self._reader.replicas = self._replicas
            self._reader.audit = AuditBuffer("sdk")
            # a script or notebook that never calls close() still records what it read
            atexit.register(_flush_audit_at_exit, weakref.ref(self))
            self._reader.audit.key = audit_key(self.online.client, create=True)
            self._audit_flushed = time.monotonic()
            self._served_log = ServedLog(self.log_sample_rate)
        if isinstance(ids, (str, int)):
            ids = [ids]
        try:
            vectors = self._reader.get(entity_type, [str(i) for i in ids], names, model, self.principal)
        finally:
            if self._reader.audit and time.monotonic() - self._audit_flushed >= 1.0:
                self.flush_audit()
        if self._served_log.rate and self._served_log.add(vectors, model):
            self._served_log.flush_in_background(self.online.client)
        return vectors

    def use_near_cache(self, config=True, clock=None) -> None:
        """Keep hot entities' values in this process for online_features, each for at most a share of its
        views' freshness SLO. `config` is what serve's `near_cache` setting takes (True: the defaults; a
        mapping of entries / slo_fraction / max_age_s; False: off) or a NearCacheConfig."""
        from featurehouse.serving.near_cache import NearCache, NearCacheConfig, near_cache_config

        chosen = config if isinstance(config, NearCacheConfig) else near_cache_config(config)
        self._near_cache = None if chosen is None else NearCache(chosen, **({"clock": clock} if clock else {}))
        if getattr(self, "_reader", None) is not None:
            self._reader.near_cache = self._near_cache

    def use_replica_reads(self, config=True) -> None:
        """Read a Redis Cluster's replicas in online_features while each is proven at most `max_lag_s`
        behind its primary (docs/online-store.md); each vector's `behind_s` says how far at most. `config`
        is what serve's `replica_reads` setting takes (True: the defaults; a mapping of max_lag_s /
        probe_every_s; False: off) or a ReplicaReadsConfig."""
        from featurehouse.online.connect import is_cluster
        from featurehouse.online.replicas import (
            ReplicaReadsConfig,
            ReplicaReadsSettingError,
            ReplicaRouter,
            replica_reads_config,
        )

        chosen = config if isinstance(config, ReplicaReadsConfig) else replica_reads_config(config)
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None
        if chosen is not None:
            if not is_cluster(self.online.client):
                raise ReplicaReadsSettingError("replica_reads needs a Redis Cluster online store "
                                               "(redis+cluster://host:port): a single Redis has no replicas to read")
            self._replicas = ReplicaRouter(self.online.client, chosen)
        if getattr(self, "_reader", None) is not None:
            self._reader.replicas = self._replicas

    @property
    def replica_reads(self):
        """The replica router (its `lag` holds what the probes proved), or None when off."""
        return self._replicas

    @property
    def near_cache(self):
        """The in-process near-cache (hits, misses), or None when off."""
        return self._near_cache

    def batch_features(self, entity_type: str, ids=None, names=None, model: str | None = None, as_of=None,
                       spine=None, all_entities: bool = False, progress=None, *, features=None):
        """Batch scoring: what `online_features` would answer, for many entities, from the warehouse.

        Serving's rules (feature resolution, versions, TTL expiry, SLO staleness; featurehouse/serving/
        batch.py) on the rows the sync writes online, so a batch score and an online score of the same
        entity see the same inputs. `ids` as serving takes them, or a `spine` holding the entity's key
        columns, or `all_entities`; `as_of` reads the warehouse as it was then. Returns BatchFeatures
        (`.table`, `.to_pandas()`)."""
        from featurehouse.serving.batch import batch_features

        names = _one_of(names, features)
        if isinstance(ids, (str, int)):
            ids = [ids]
        self.attach_stream_tables()
        self.registry.active.update(self._read_active_versions())
        bound = None
        if model and "@" in model:
            from featurehouse.offline.lineage import UnknownModelVersion

            try:
                bound = {model: self.lineage_log().model_version(model).features}
            except UnknownModelVersion:
                bound = {}  # serving's rule: an unregistered NAME@1 is the exposure; others are unknown
        read_views: list = []

        def authorize(views) -> None:
            self.authorize(views, model, path="batch")
            read_views.extend(views)

        result = batch_features(self.warehouse, self.registry, entity_type, ids=ids, spine=spine, names=names,
                                model=model, as_of=as_of, model_versions=bound, all_entities=all_entities,
                                progress=progress, authorize=authorize)
        self._audit_restricted("batch_features", read_views, result.rows, model, "batch", entity_type)
        return result

    # -- push / stream ------------------------------------------------------------------------

    def push(self, view_name: str, rows, version: int | None = None):
        """Validate rows and append them to the view's durable stream (invalid ones to its dead letters)."""
        from featurehouse.stream.log import push

        return push(self.online.client, self.registry.view(view_name, version), rows,
                    max_clock_skew=self.max_clock_skew)

    @property
    def sync_policy(self):
        """How far behind the clock incremental syncs keep their watermarks, and how often they read
        everything: `vars.featurehouse.late_arrival` (1h) and `vars.featurehouse.reconcile_every` (1d;
        `never`: only `--full-refresh`)."""
        from featurehouse.durations import parse_duration
        from featurehouse.errors import InvalidDuration, InvalidFeatureMetadata
        from featurehouse.sync.batch import SyncPolicy

        settings = self.project.featurehouse_vars if self.project is not None else {}
        values = {}
        for name in ("late_arrival", "reconcile_every"):
            setting = settings.get(name)
            if setting is None:
                continue
            if name == "reconcile_every" and str(setting).strip().lower() == "never":
                values[name] = None
                continue
            try:
                values[name] = parse_duration(setting)
            except InvalidDuration as e:
                raise InvalidFeatureMetadata("dbt_project.yml", f"vars.featurehouse.{name}", str(e)) from None
        return SyncPolicy(**values)

    @property
    def max_clock_skew(self):
        """How far ahead of the clock a pushed event time may be: `vars.featurehouse.max_clock_skew`, 5m by default."""
        from featurehouse.durations import parse_duration
        from featurehouse.errors import InvalidDuration, InvalidFeatureMetadata
        from featurehouse.stream.rows import MAX_CLOCK_SKEW

        setting = self.project.featurehouse_vars.get("max_clock_skew") if self.project is not None else None
        try:
            return parse_duration(setting) or MAX_CLOCK_SKEW
        except InvalidDuration as e:
            raise InvalidFeatureMetadata("dbt_project.yml", "vars.featurehouse.max_clock_skew", str(e)) from None

    def stream_consumer(self, select: Sequence[str] = (), name: str = "consumer-1", batch_size: int = 500,
                        max_deliveries: int | None = None):
        """A consumer-group member applying pushed rows to the warehouse and the online store; an entry
        failing `max_deliveries` times (default 5) goes to the view's dead letters."""
        from featurehouse.stream.log import MAX_DELIVERIES, StreamConsumer

        return StreamConsumer(self.online, self.warehouse, self.online_views(select), name=name, batch_size=batch_size,
                              schema=self.catalog.schema, max_deliveries=max_deliveries or MAX_DELIVERIES)

    def forget(self, entity_type: str, key: tuple):
        """Delete an entity everywhere: online values (all views, versions, and entities keyed by it),
        offline rows of PII views and of every view's landing table, its entries in the push streams,
        dead letters and served-vector log; recorded in featurehouse.featurehouse_deletions. A tombstone
        keeps it out of sync and the stream until lifted (featurehouse/sync/forget.py)."""
        from featurehouse.access.audit import redact_entity
        from featurehouse.sync.forget import forget

        self.attach_stream_tables()
        result = forget(self.warehouse, self.online, self.registry, entity_type, tuple(key), self.catalog)
        if self._near_cache is not None:
            self._near_cache.clear()  # this process serves nothing it held of the entity (serve's workers: docs)
        if result.matched_nothing:
            return result  # the CLI reports NothingMatched; nothing was forgotten, so nothing is audited
        result.audit_refs_redacted = redact_entity(self.online.client, self.catalog, entity_type, tuple(key))
        self.audit_event("forget", entity_type=entity_type, detail=f"{result.online_keys_deleted} online key(s), "
                         f"{sum(result.offline_rows_deleted.values())} offline row(s) deleted")
        return result

    def forget_status(self, entity_type: str, key: tuple, lift: bool = False):
        """Where a forgotten entity still is, place by place, and whether its tombstone can be lifted
        (no view's relation or landing table, push stream or online hash holds it); `lift` lifts it
        then, or raises TombstoneHeld naming the places that still hold it."""
        from featurehouse.sync.forget import forget_status
        from featurehouse.sync.forget import lift as lift_tombstone

        self.attach_stream_tables()
        run = lift_tombstone if lift else forget_status
        return run(self.warehouse, self.online, self.registry, entity_type, tuple(key), self.catalog)

    def retention(self, now=None, dry_run: bool = False):
        """Remove online values older than their view's TTL (serving already treats them as expired), and
        featurehouse's own offline copies older than a view's `meta.featurehouse.retention` (else
        `vars.featurehouse.retention`): landing rows, served values, training-set profiles; and audit
        events older than `vars.featurehouse.audit_retention` (featurehouse/sync/retention.py). The
        user's models and sources are never touched. Returns the online values removed per view@N (a
        dict) with `.offline` the offline counts; `dry_run` counts and deletes nothing."""
        from datetime import datetime, timezone

        from featurehouse.durations import parse_duration
        from featurehouse.errors import InvalidDuration, InvalidFeatureMetadata
        from featurehouse.online.codec import to_micros
        from featurehouse.sync.retention import RetentionReport, RetentionResult, count_online_past, offline_retention

        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        if now.tzinfo is not None:
            now = now.astimezone(timezone.utc).replace(tzinfo=None)
        settings = self.project.featurehouse_vars if self.project is not None else {}
        periods = {}
        for name in ("retention", "audit_retention"):  # read first: a bad setting deletes nothing
            try:
                periods[name] = parse_duration(settings.get(name))
            except InvalidDuration as e:
                raise InvalidFeatureMetadata("dbt_project.yml", f"vars.featurehouse.{name}", str(e)) from None
            if periods[name] is not None and not periods[name]:
                raise InvalidFeatureMetadata("dbt_project.yml", f"vars.featurehouse.{name}",
                                             "must be longer than 0 (leave it out to keep everything)")
        cutoffs = {}
        for view in self.registry.views.values():
            if view.online and view.ttl is not None:
                cutoffs[view.versioned_name] = to_micros(now - view.ttl)
        if not cutoffs:
            online = {}
        elif dry_run:
            online = count_online_past(self.online.client, cutoffs)
        else:
            online = self.online.expire_older_than(cutoffs)
        offline = RetentionResult(now, dry_run)
        if periods["retention"] or periods["audit_retention"] or any(v.retention for v in self.registry.views.values()):
            offline = offline_retention(self.warehouse, self.catalog, self.registry, now, default=periods["retention"],
                                        audit_retention=periods["audit_retention"], dry_run=dry_run)
            if offline.removed_anything and not dry_run:
                self.audit_event("retention", detail=offline.summary())
        return RetentionReport(online, offline)

    # -- versions -----------------------------------------------------------------------------

    def backfill(self, name: str, version: int, start=None, end=None, progress=None):
        """Build version N of a view into its own relation and replay it into its own online namespace.

        The active version is never touched: backfilling it is refused, and so is a version whose
        relation is the active version's (building it would overwrite what serving and training read).
        """
        from featurehouse.errors import FeaturehouseError
        from featurehouse.sync.batch import sync_view
        from featurehouse.sync.runs import SyncRunLog

        target = self.registry.view(name, version)
        active = self.registry.view(name)
        if target.version == active.version:
            raise FeaturehouseError(f"'{target.versioned_name}' is the active version: a backfill never mutates it; "
                                    f"declare version {max(self.registry.versions(name)) + 1} in a model of its own "
                                    "(the active version's model stays declared beside it) and backfill that")
        if target.relation == active.relation:
            raise FeaturehouseError(f"'{target.versioned_name}' has the same relation as active '{active.versioned_name}' "
                                    f"({'.'.join(target.relation.parts())}); give the new version its own model")
        if self.project is not None and target.original_file_path:
            self.close_warehouse()
            self.project.run_dbt(["build", "--select", f"path:{target.original_file_path}"])
            self.load_registry()  # the new version's columns as built, not as declared before it existed
            target = self.registry.view(name, version)
        run = sync_view(self.warehouse, self.online, SyncRunLog(self.catalog), target, full_refresh=True,
                        event_time_from=start, event_time_until=end, mode="backfill", progress=progress)
        self.publish(target, "backfill")
        return run

    def promote(self, name: str, version: int) -> int | None:
        """Make view@version the one training (unpinned) and serving use; returns the version it replaced."""
        from featurehouse.offline.versions import VersionLog

        view = self.registry.view(name, version)
        log = VersionLog(self.catalog)
        if name not in log.active():  # first promote: record what was active implicitly, so rollback has a row
            implicit = self.registry.view(name)
            if implicit.version != view.version:
                log.promote(implicit)
        previous = log.promote(view)
        self.publish(view, "promote")
        self.online.set_active_version(name, version)
        self.registry.active[name] = version
        return previous

    def close_warehouse(self) -> None:
        if self._warehouse is not None and self.project is not None:
            self._warehouse.close()
            self._warehouse = None

    # -- registry -----------------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self.load_registry()
        return self._registry

    def load_registry(self, refresh: bool = False) -> Registry:
        """Parse the dbt project (when it changed) and read feature views: the one loader every process uses."""
        from featurehouse.registry.loader import load_registry

        assert self.project is not None, "a hand-built store has no dbt project"
        self._registry = load_registry(self.project, self._describe, self._read_active_versions, refresh=refresh,
                                       describe_many=self._describe_many)
        self.attach_stream_tables()
        return self._registry

    def attach_stream_tables(self) -> None:
        """Views whose pushed rows landed in the warehouse read those rows too (training, sync, parity)."""
        import dataclasses

        from featurehouse.stream.log import check_landing_table, landing_relation

        views = list(self.registry.views.items())
        landings = {key: landing_relation(view, self.catalog_schema) for key, view in views}
        try:
            described = self.warehouse.describe_many(list(landings.values()))
        except Exception:  # noqa: BLE001 - warehouse unreachable: nothing landed that we can see
            described = {}
        for key, view in views:
            landing = landings[key]
            exists = bool(described.get(landing))
            if exists:  # a table an older featurehouse typed from a first push: say so, not a UNION error
                check_landing_table(self.warehouse, view, schema=self.catalog_schema)
            wanted = (landing,) if exists else ()
            if view.extra_relations != wanted:
                self.registry.views[key] = dataclasses.replace(view, extra_relations=wanted)

    def _read_active_versions(self) -> dict[str, int]:
        from featurehouse.offline.versions import read_active

        try:
            return read_active(self.catalog)
        except Exception:  # noqa: BLE001 - warehouse not reachable yet: nothing promoted that we can see
            return {}

    def relation_of(self, name: str) -> Relation | None:
        """The warehouse relation of a dbt model, seed, snapshot or source table by its name."""
        if self.project is None:
            return None
        return self.registry.relations.get(name)

    def _spine(self, spine: Any) -> Any:
        """A spine given as a dbt model's name reads that model's relation."""
        if isinstance(spine, str) and spine.isidentifier():
            relation = self.relation_of(spine)
            if relation is not None:
                return self.warehouse.relation_sql(relation)
        return spine

    def _describe(self, relation):
        return self.warehouse.describe(relation)  # None when not built; errors are the loader's to judge

    def _describe_many(self, relations):
        return self.warehouse.describe_many(relations)

    def build(self, select: Sequence[str] = (), quiet: bool = False) -> Any:
        """`dbt build`, then reload the registry from the fresh manifest."""
        from featurehouse.errors import ProjectError, WarehouseLocked
        from featurehouse.offline.warehouse import (
            LOCK_TIMEOUT_ENV,
            DuckDBWarehouse,
            lock_conflict_in,
            lock_timeout_from_env,
        )

        assert self.project is not None
        if isinstance(self.warehouse, DuckDBWarehouse):
            # dbt opens the DuckDB file itself and fails at once if another process holds it: wait for the
            # file first, as every other command does (bounded), then let it go for dbt
            with self.warehouse.session():
                pass
        self.close_warehouse()
        self.project.ensure_packages()
        args = ["build"] + (["--select", *select] if select else [])
        try:
            result = self.project.run_dbt(args, quiet=quiet)
        except ProjectError as e:
            conflict = lock_conflict_in(str(e))  # taken in the moment between our wait and dbt's open
            if conflict is not None:
                raise WarehouseLocked(*conflict, lock_timeout_from_env(), LOCK_TIMEOUT_ENV) from None
            raise
        self.load_registry()
        return result

    # -- training sets ------------------------------------------------------------------------

    def build_training_set(self, spine: Any, features: Sequence[str], timestamp: str,
                           entity: str | None = None, as_known_at: bool = False, keep_order: bool = True,
                           include_event_times: bool = False, progress: Progress | None = None,
                           record: bool = True, name: str | None = None, model: str | None = None) -> TrainingSet:
        """Build a training set; with `record` (the default) it is recorded for lineage and drift checks
        (`training_set.record.training_set_id`) and the feature versions it used become published.
        Every view it reads must be readable by the principal and, for `model`, by the model's team.

        The join's result is worth more than its lineage: when recording fails, the training set is
        still returned, with `record_error` saying why (and `record` None if no record was written),
        and a LineageNotRecorded warning."""
        features = _feature_list(features)
        views = _views_of(self.registry, features)
        self.authorize(views, model, path="training_set")
        self.attach_stream_tables()
        ts = build_training_set(
            self.warehouse, self.registry, self._spine(spine), features, timestamp, entity=entity,
            as_known_at=as_known_at, keep_order=keep_order, include_event_times=include_event_times,
            progress=progress,
        )
        self._audit_restricted("training_set", views, ts.rows, model, "training_set")
        if record:
            import warnings

            from featurehouse.offline.lineage import LineageLog
            from featurehouse.offline.openlineage import emit_training_set
            from featurehouse.offline.training_set import LineageNotRecorded

            if progress:
                progress("recording lineage and feature profiles")
            failed = "training set not recorded for lineage"
            try:
                ts.record = LineageLog(self.catalog).record_training_set(ts, self.registry, timestamp, name)
                failed = f"training set {ts.record.training_set_id} recorded, but its feature versions not published"
                for view_ref in sorted(ts.record.transforms):  # every view@version the training set read
                    view_name, _, version = view_ref.partition("@")
                    self.publish(self.registry.view(view_name, int(version)), "training-set")
                failed = f"training set {ts.record.training_set_id} recorded, but no OpenLineage event sent"
                emit_training_set(self.registry, self.project, self.warehouse.dialect, ts, ts.record)
            except Exception as e:  # noqa: BLE001 - any engine's error; it is kept and warned about, not raised
                cause = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
                ts.record_error = f"{failed}: {type(e).__name__}" + (f": {cause}" if cause else "")
                warnings.warn(ts.record_error, LineageNotRecorded, stacklevel=2)
        return ts

    def lineage_log(self):
        from featurehouse.offline.lineage import LineageLog

        return LineageLog(self.catalog)

    def training_set(self, spine: Any, features: Sequence[str], timestamp: str, entity: str | None = None,
                     as_known_at: bool = False, keep_order: bool = True, include_event_times: bool = False,
                     model: str | None = None):
        """A pandas DataFrame: the spine's rows and columns, then one column per feature (`view__column`).
        `model` names the exposure the set is for: its team must be allowed every feature too."""
        return self.build_training_set(spine, features, timestamp, entity, as_known_at, keep_order,
                                       include_event_times, model=model).to_pandas()

    def training_set_arrow(self, spine: Any, features: Sequence[str], timestamp: str, entity: str | None = None,
                           as_known_at: bool = False, keep_order: bool = True, include_event_times: bool = False,
                           model: str | None = None):
        """The same as `training_set`, as a pyarrow Table."""
        return self.build_training_set(spine, features, timestamp, entity, as_known_at, keep_order,
                                       include_event_times, model=model).table

    # -- guardrails: the composition root hands each guard the parts it reads ----------------------

    def check(self, compile_sql: bool = True):
        """The schema and logic gate (`featurehouse check`): published view versions against the current SQL."""
        from featurehouse.guard.schema_gate import check, current_schemas

        current = current_schemas(self.registry, self.project, lambda sql: self.warehouse.describe_query(sql),
                                  self.close_warehouse, compile_sql)
        result = check(self.registry, self.catalog, current)
        result.access, result.access_warnings = self.access_violations()
        return result

    def access_violations(self) -> tuple[list, list[str]]:
        """Features that models use but their teams may not read (each a denied Decision naming model and view), and
        warnings: when the project declares no teams, the confidential and pii views anyone may read; else grants that
        change nothing or have expired. A model uses the features its exposure lists, the feature views it depends
        on, and those of the dbt models it depends on (a training model calling point_in_time_join refs its views)."""
        from featurehouse.clock import utc_now
        from featurehouse.registry.model import RESTRICTED

        day = utc_now().date()
        if not self.policy.enforced:
            return [], [f"access is not enforced (no vars.featurehouse.teams): every principal reads the restricted "
                        f"view {v}" for v in sorted({v.name for v in self.registry.views.values()
                                                     if v.sensitivity in RESTRICTED})]
        by_id = {v.unique_id: v for v in self.registry.views.values() if v.unique_id}
        nodes = self.project.manifest().get("nodes", {}) if self.project is not None else {}
        denied = []
        for name in sorted(self.registry.models):
            spec = self.registry.models[name]
            used = {self.registry.resolve(f)[0].versioned_name: self.registry.resolve(f)[0] for f in spec.features}
            for node_id in spec.depends_on:
                upstream = [node_id, *((nodes.get(node_id) or {}).get("depends_on") or {}).get("nodes", [])]
                for uid in upstream:
                    if uid in by_id:
                        used.setdefault(by_id[uid].versioned_name, by_id[uid])
            denied += self.policy.model_violations(spec, day, list(used.values()))
        return denied, self.policy.hygiene(day)

    def freshness(self, select: Sequence[str] = ()):
        """Per view: newest event, last good sync, materializer lag against the SLO (`featurehouse freshness`)."""
        from featurehouse.guard.freshness import view_freshness

        self.attach_stream_tables()
        views = [self.registry.view(*_name_version(n)) for n in select] if select else \
            [self.registry.view(n) for n in self.registry.view_names()]
        return view_freshness(views, self.warehouse, self.online.client, catalog=self.catalog)

    def parity(self, select: Sequence[str] = (), sample: int | None = 1000):
        """Online values against the warehouse's latest rows, per online view (`featurehouse parity`)."""
        from featurehouse.guard.parity import check_parity

        self.attach_stream_tables()
        return [check_parity(self.warehouse, self.online, view, sample, catalog=self.catalog)
                for view in self.online_views(select)]

    def skew(self, model: str | None = None, since=None, features: list[str] | None = None):
        """Served vectors against point-in-time values at their served_at (`featurehouse skew`)."""
        from featurehouse.guard.served import land_served
        from featurehouse.guard.skew import measure_skew

        self.attach_stream_tables()
        land_served(self.online.client, self.catalog)
        return measure_skew(self.registry, self.warehouse, self.catalog, model, since, features)

    def drift(self, training_set_id: str, model: str | None = None, since=None):
        """Served values against a recorded training set's distributions (`featurehouse drift`)."""
        from featurehouse.guard.drift import measure_drift
        from featurehouse.guard.served import land_served

        land_served(self.online.client, self.catalog)
        return measure_drift(self.catalog, training_set_id, model, since)

    def deploy_check(self, ref: str, thresholds=None, since=None):
        """Every gate for the feature versions MODEL@VERSION was trained on (`featurehouse deploy-check`)."""
        from featurehouse.guard.deploy_check import Thresholds, deploy_check

        self.attach_stream_tables()
        return deploy_check(self.registry, self.warehouse, self.online, self.catalog, ref,
                            thresholds or Thresholds(), since)

    def lineage(self, target: str):
        """The lineage tree of a feature (`view.column[@N]`) or a model (`NAME[@VERSION]`)."""
        from featurehouse.errors import InvalidRequest
        from featurehouse.guard.lineage import feature_lineage, model_lineage

        if not target.strip():
            raise InvalidRequest("give a feature (view.column[@N]) or a model (NAME or NAME@VERSION)")
        manifest = self.project.manifest() if self.project is not None else {}
        if "." in target.partition("@")[0]:
            return feature_lineage(self.registry, self.catalog, manifest, target)
        return model_lineage(self.registry, self.catalog, manifest, target)

    def register_model(self, ref: str, training_set_id: str | None = None, features: list[str] | None = None):
        """Bind MODEL@VERSION to a recorded training set, in the warehouse and for serving."""
        from featurehouse.guard.lineage import register_model

        return register_model(self.registry, self.catalog, self.online.client, ref, training_set_id, features)

