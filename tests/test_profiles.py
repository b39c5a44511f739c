"""profiles.yml is read the way dbt reads it, and the warehouse connection is configured the way dbt's adapter
configures its own: dbt's renderer (env_var, as_number, secrets), dbt's credentials and defaults, dbt-duckdb's
attach / extensions / settings / plugins, dbt-postgres's SSL, search_path, role and application_name."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pytest

from featurehouse.errors import ProjectError
from featurehouse.offline.warehouse import SPARK_METASTORE_URL, SPARK_WAREHOUSE_DIR, PostgresWarehouse, warehouse_for_target
from featurehouse.offline.warehouse import spark_conf as spark_settings
from featurehouse.project import DbtProject


def make_project(root: Path, outputs: str, target: str = "dev") -> DbtProject:
    """A minimal dbt project in `root` whose profile has these outputs (YAML, indented as under `outputs:`)."""
    (root / "dbt_project.yml").write_text("name: fh_profiles\nversion: '1.0'\nconfig-version: 2\nprofile: fh_profiles\n")
    (root / "profiles.yml").write_text(f"fh_profiles:\n  target: {target}\n  outputs:\n"
                                       + textwrap.indent(textwrap.dedent(outputs), "    "))
    return DbtProject(root, profiles_dir=root)


def open_warehouse(project: DbtProject):
    target = project.target()
    return warehouse_for_target(target.type, target.settings, project.dir)


def scalar(warehouse, sql: str):
    return warehouse.fetch_arrow(sql).column(0)[0].as_py()


# -- rendering: dbt's own renderer ----------------------------------------------------------------


def test_as_number_as_bool_and_as_native_render_as_in_dbt(tmp_path, monkeypatch):
    monkeypatch.setenv("FH_PROFILE_THREADS", "4")
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          threads: "{{ env_var('FH_PROFILE_THREADS') | as_number }}"
          disable_transactions: "{{ 'False' | as_bool }}"
          settings: "{{ '{\\"memory_limit\\": \\"512MB\\"}' | as_native }}"
    """)
    target = project.target()
    assert target.settings["threads"] == 4
    assert target.settings["disable_transactions"] is False
    assert target.settings["settings"] == {"memory_limit": "512MB"}


def test_a_missing_env_var_is_a_one_line_error_naming_the_var_and_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("FH_PROFILE_MISSING", raising=False)
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: "{{ env_var('FH_PROFILE_MISSING') }}"
    """)
    with pytest.raises(ProjectError) as e:
        project.target()
    message = str(e.value)
    assert "FH_PROFILE_MISSING" in message and str(tmp_path / "profiles.yml") in message
    assert "\n" not in message and e.value.__cause__ is None and e.value.__suppress_context__


def test_only_the_chosen_target_is_rendered(tmp_path, monkeypatch):
    """As in dbt: an env var that only another target uses need not be set."""
    monkeypatch.delenv("FH_PROFILE_PROD_HOST", raising=False)
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
        prod:
          type: postgres
          host: "{{ env_var('FH_PROFILE_PROD_HOST') }}"
    """)
    assert project.target().settings["path"] == "wh.duckdb"


def test_the_target_name_itself_may_come_from_an_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("FH_PROFILE_TARGET", "other")
    project = make_project(tmp_path, """\
        dev: {type: duckdb, path: dev.duckdb}
        other: {type: duckdb, path: other.duckdb}
    """, target="\"{{ env_var('FH_PROFILE_TARGET') }}\"")
    assert project.target().name == "other"


def test_unknown_profile_and_target_keep_their_messages(tmp_path):
    make_project(tmp_path, "dev: {type: duckdb, path: wh.duckdb}\n")
    with pytest.raises(ProjectError, match=r"target 'nope' not found in profile 'fh_profiles' \(targets: dev\)"):
        DbtProject(tmp_path, profiles_dir=tmp_path, target="nope").target()
    (tmp_path / "dbt_project.yml").write_text("name: fh_profiles\nprofile: elsewhere\n")
    with pytest.raises(ProjectError, match="profile 'elsewhere' not found in"):
        DbtProject(tmp_path, profiles_dir=tmp_path).target()


def test_secret_env_vars_render_like_any_other(tmp_path, monkeypatch):
    monkeypatch.setenv("DBT_ENV_SECRET_FH_PW", "s3cret")
    project = make_project(tmp_path, """\
        dev:
          type: postgres
          host: db.example
          port: 5432
          user: me
          password: "{{ env_var('DBT_ENV_SECRET_FH_PW') }}"
          dbname: d
          schema: s
    """)
    target = project.target()
    assert target.credentials.password == "s3cret"
    assert "s3cret" not in repr(target)


# -- credentials: dbt's validation, aliases and defaults ---------------------------------------------


def test_the_target_carries_the_adapters_credentials_with_dbts_defaults(tmp_path):
    project = make_project(tmp_path, """\
        dev:
          type: postgres
          host: db.example
          port: 5433
          user: me
          pass: pw
          dbname: analytics
          schema: s
    """)
    creds = project.target().credentials
    assert type(creds).__name__ == "PostgresCredentials"
    assert (creds.database, creds.password, creds.port) == ("analytics", "pw", 5433)  # dbt's aliases
    assert (creds.connect_timeout, creds.sslmode, creds.search_path) == (10, None, None)  # dbt's defaults


def test_a_port_that_dbt_would_reject_is_rejected_with_dbts_reason(tmp_path):
    """Without `| as_number` an env var renders as text, and dbt refuses a text port: so do we."""
    project = make_project(tmp_path, """\
        dev:
          type: postgres
          host: db.example
          port: "{{ env_var('FH_PROFILE_NO_SUCH_PORT', '5432') }}"
          user: me
          password: ""
          dbname: d
          schema: s
    """)
    with pytest.raises(ProjectError, match=r"target \"dev\" invalid: '5432' is not of type 'integer'"):
        project.target()


def test_a_target_of_a_warehouse_without_a_dbt_adapter_still_has_settings(tmp_path):
    project = make_project(tmp_path, "dev: {type: fh_no_such_adapter, host: h}\n")
    target = project.target()
    assert (target.type, target.credentials) == ("fh_no_such_adapter", None)
    with pytest.raises(ProjectError, match="warehouse type 'fh_no_such_adapter' is not supported yet"):
        warehouse_for_target(target.type, target.settings, project.dir)


# -- Spark: dbt-spark's `method: session`, a SparkSession in this process ----------------------------------


def test_a_spark_target_other_than_a_session_is_refused_naming_the_setting(tmp_path):
    # the settings as a profile gives them (dbt-spark itself wants PyHive installed for thrift)
    thrift = {"type": "spark", "method": "thrift", "host": "h", "port": 10000, "schema": "s"}
    with pytest.raises(ProjectError, match=r"spark target: method 'thrift' is not supported yet; set `method: session`"):
        warehouse_for_target("spark", thrift, tmp_path)


def test_spark_keeps_its_tables_and_metastore_under_the_project_unless_the_profile_says_where(tmp_path):
    defaults = spark_settings({"method": "session"}, tmp_path)
    assert defaults[SPARK_WAREHOUSE_DIR] == str(tmp_path / ".featurehouse" / "spark" / "warehouse")
    assert defaults[SPARK_METASTORE_URL] == \
        f"jdbc:derby:;databaseName={tmp_path / '.featurehouse' / 'spark' / 'metastore_db'};create=true"
    assert (defaults["spark.master"], defaults["spark.sql.session.timeZone"], defaults["spark.ui.enabled"]) == \
        ("local[2]", "UTC", "false")
    assert defaults["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    given = spark_settings({"server_side_parameters": {SPARK_WAREHOUSE_DIR: "wh", "spark.master": "local[1]"}}, tmp_path)
    assert (given[SPARK_WAREHOUSE_DIR], given["spark.master"]) == (str(tmp_path / "wh"), "local[1]")


@pytest.mark.spark
def test_a_spark_session_target_shares_the_process_session_when_its_settings_agree(tmp_path, spark_session_warehouse,
                                                                                 spark_conf):
    params = "".join(f"\n            {k}: {v!r}" for k, v in spark_conf.items())
    project = make_project(tmp_path, f"""\
        dev:
          type: spark
          method: session
          host: NA
          schema: s
          server_side_parameters:{params}
    """)
    wh = open_warehouse(project)
    assert wh.spark is spark_session_warehouse.spark
    assert scalar(wh, "select current_timezone()") == "UTC"


@pytest.mark.spark
def test_a_spark_target_whose_tables_live_elsewhere_than_the_running_session_is_refused(tmp_path, spark_session_warehouse):
    project = make_project(tmp_path, "dev: {type: spark, method: session, host: NA, schema: s}\n")
    with pytest.raises(ProjectError, match="a SparkSession already runs in this process with spark.sql.warehouse.dir="):
        open_warehouse(project)


# -- DuckDB: the connection dbt-duckdb would open -----------------------------------------------------


def test_a_relative_duckdb_path_is_relative_to_the_project_dir(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path)
    project = make_project(tmp_path / "proj", """\
        dev:
          type: duckdb
          path: data/wh.duckdb
    """)
    with open_warehouse(project) as wh:
        assert wh.path == str(tmp_path / "proj" / "data" / "wh.duckdb")
        assert scalar(wh, "select current_setting('TimeZone')") == "UTC"
    assert (tmp_path / "proj" / "data" / "wh.duckdb").is_file() and not (tmp_path / "data").exists()


def test_attached_databases_are_readable_through_the_warehouse(tmp_path):
    with duckdb.connect(str(tmp_path / "lookup.duckdb")) as con:
        con.execute("create table countries as select 'FR' as code, 'France' as name")
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          attach:
            - path: lookup.duckdb
              alias: lookup
              read_only: true
    """)
    with open_warehouse(project) as wh:
        assert wh.fetch_arrow("select name from lookup.main.countries").to_pylist() == [{"name": "France"}]
        with pytest.raises(duckdb.Error, match="read-only"):
            wh.execute("create table lookup.main.t (a int)")


def test_profile_settings_are_set_on_the_connection_and_the_session_stays_in_utc(tmp_path):
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          settings:
            threads: 1
            memory_limit: 300MB
            TimeZone: Europe/Paris
    """)
    with open_warehouse(project) as wh:
        assert scalar(wh, "select current_setting('threads')") == 1
        assert scalar(wh, "select current_setting('memory_limit')") in ("286.1 MiB", "300.0 MB")
        assert scalar(wh, "select current_setting('TimeZone')") == "UTC"


def test_bundled_extensions_load_without_a_network_and_an_unknown_one_is_a_clear_error(tmp_path):
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          extensions: [json, parquet]
    """)
    with open_warehouse(project) as wh:
        assert scalar(wh, "select json_extract('{\"a\": 7}', '$.a')::int") == 7
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          extensions: [fh_no_such_extension]
    """)
    with pytest.raises(ProjectError, match="cannot open DuckDB at .*fh_no_such_extension"):
        open_warehouse(project)


def test_config_options_reach_duckdb_connect(tmp_path):
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          config_options:
            default_order: desc
    """)
    with open_warehouse(project) as wh:
        assert scalar(wh, "select current_setting('default_order')").lower() == "desc"


def test_a_plugin_from_the_profiles_module_paths_configures_the_connection(tmp_path):
    module = f"fh_test_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / f"{module}.py").write_text(textwrap.dedent("""\
        from dbt.adapters.duckdb.plugins import BasePlugin


        class Plugin(BasePlugin):
            def initialize(self, config):
                self.answer = int(config["answer"])

            def configure_connection(self, conn):
                conn.execute(f"CREATE OR REPLACE TEMP MACRO fh_answer() AS {self.answer}")
    """))
    project = make_project(tmp_path, f"""\
        dev:
          type: duckdb
          path: wh.duckdb
          module_paths: [plugins]
          plugins:
            - module: {module}
              config: {{answer: 42}}
    """)
    with open_warehouse(project) as wh:
        assert scalar(wh, "select fh_answer()") == 42
    assert str(tmp_path / "plugins") not in sys.path


def test_a_plugin_that_cannot_be_loaded_is_named(tmp_path):
    project = make_project(tmp_path, """\
        dev:
          type: duckdb
          path: wh.duckdb
          plugins:
            - module: fh_no_such_plugin
    """)
    with pytest.raises(ProjectError, match="plugin .*fh_no_such_plugin"):
        open_warehouse(project)


# -- PostgreSQL: the connection dbt-postgres would open -----------------------------------------------


def pg_project(root: Path, postgres_url: str, **settings: str) -> DbtProject:
    """A project whose `dev` target is the test server, plus `settings` (YAML values, as written in the file)."""
    url = urlparse(postgres_url)
    base = {"type": "postgres", "host": url.hostname or "127.0.0.1", "port": str(url.port or 5432),
            "user": url.username or "postgres", "password": f"'{url.password or ''}'",
            "dbname": url.path.lstrip("/") or "postgres", "schema": "public"}
    lines = "".join(f"  {key}: {value}\n" for key, value in {**base, **settings}.items())
    return make_project(root, "dev:\n" + lines)


@pytest.fixture
def pg_schema(postgres_url):
    """A schema of this test's own, holding one table, dropped afterwards."""
    name = f"fh_profiles_{uuid.uuid4().hex[:8]}"
    with PostgresWarehouse(postgres_url) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
        admin.execute(f"CREATE TABLE {name}.only_here AS SELECT 1 AS a")
    yield name
    with PostgresWarehouse(postgres_url) as admin:
        admin.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.postgres
def test_pg_port_from_an_env_var_with_as_number_and_search_path(tmp_path, monkeypatch, postgres_url, pg_schema):
    monkeypatch.setenv("PGPORT_X", str(urlparse(postgres_url).port or 5432))
    project = pg_project(tmp_path, postgres_url, search_path=f"{pg_schema}, public",
                         port="\"{{ env_var('PGPORT_X') | as_number }}\"")
    with open_warehouse(project) as wh:
        assert scalar(wh, "show search_path") == f"{pg_schema}, public"
        assert scalar(wh, "select a from only_here") == 1
        assert scalar(wh, "show timezone") == "UTC"


@pytest.mark.postgres
def test_pg_role_is_set_after_connecting(tmp_path, postgres_url):
    role = f"fh_profiles_role_{uuid.uuid4().hex[:8]}"
    with PostgresWarehouse(postgres_url) as admin:
        admin.execute(f"CREATE ROLE {role}")
        admin.execute(f"GRANT {role} TO CURRENT_USER")
    try:
        with open_warehouse(pg_project(tmp_path, postgres_url, role=role)) as wh:
            assert scalar(wh, "select current_user") == role
    finally:
        with PostgresWarehouse(postgres_url) as admin:
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
def test_pg_sslmode_and_application_name_are_honoured(tmp_path, postgres_url):
    project = pg_project(tmp_path, postgres_url, sslmode="disable", application_name="fh-profiles-test")
    with open_warehouse(project) as wh:
        assert scalar(wh, "select ssl from pg_stat_ssl where pid = pg_backend_pid()") is False
        assert scalar(wh, "select current_setting('application_name')") == "fh-profiles-test"
        server_has_ssl = scalar(wh, "show ssl") == "on"
    project = pg_project(tmp_path, postgres_url, sslmode="require")
    if server_has_ssl:
        with open_warehouse(project) as wh:
            assert scalar(wh, "select ssl from pg_stat_ssl where pid = pg_backend_pid()") is True
    else:
        with pytest.raises(ProjectError, match="cannot connect to PostgreSQL at .*SSL"):
            open_warehouse(project)


@pytest.mark.postgres
def test_pg_application_name_defaults_to_dbts(tmp_path, postgres_url):
    with open_warehouse(pg_project(tmp_path, postgres_url)) as wh:
        assert scalar(wh, "select current_setting('application_name')") == "dbt"
