{#-
  point_in_time_join: each spine row joined, as of its timestamp, to the requested features.
  Semantics: docs/semantics.md. Output: the spine's columns, then one column per feature named
  view__column. Call it as the body of a model:

    {{ featurehouse.point_in_time_join(spine=ref('fraud_labels'), timestamp='label_time',
                                       features=['user_txn_stats.txn_count_1h', 'merchant_risk.chargeback_rate_30d@1']) }}

  Access: compilation fails when a team that uses the model (the `exposure` named here, or any exposure
  depending on it) may not read a view it joins (macros/access.sql; docs/security.md).
-#}
{% macro point_in_time_join(spine, timestamp, features=none, entity=none, as_known_at=false, exposure=none) %}
  {#- At parse time only the refs matter: they give dbt the dependencies for ordering builds. An exposure's
      features are known only once the graph is (execute): name its views in `features` too, or in the
      training model's depends_on, for dbt to order the build. -#}
  {%- for text in features or [] -%}{%- set _ = ref((text | trim).split('.')[0]) -%}{%- endfor -%}
  {%- if not execute -%}
    {{ return('select 1 as parse_placeholder') }}
  {%- endif -%}
  {%- if features is none -%}
    {%- if not exposure -%}
      {{ exceptions.raise_compiler_error("point_in_time_join needs features=[...] or exposure='<model name>'") }}
    {%- endif -%}
    {%- set block = ((featurehouse.find_exposure(exposure).config or {}).get('meta') or featurehouse.find_exposure(exposure).meta or {}).get('featurehouse') or {} -%}
    {%- set features = block.get('features') or [] -%}
  {%- endif -%}
  {%- set requests = featurehouse.resolve_feature_requests(features, as_known_at) -%}
  {#- the access policy: every team that uses this training model may read every view it joins -#}
  {%- do featurehouse.check_training_access(requests, exposure) -%}
  {%- set spine_columns = adapter.get_columns_in_relation(spine) | map(attribute='name') | list -%}
  {%- if timestamp not in spine_columns -%}
    {{ exceptions.raise_compiler_error("spine " ~ spine ~ " has no timestamp column '" ~ timestamp ~ "'") }}
  {%- endif -%}
  {%- for req in requests -%}{%- for k in req['keys'] -%}{%- if k not in spine_columns -%}
    {{ exceptions.raise_compiler_error("spine " ~ spine ~ " has no column '" ~ k ~ "' (key of feature view '" ~ req.name ~ "')") }}
  {%- endif -%}{%- endfor -%}{%- endfor -%}
  {{ return(adapter.dispatch('point_in_time_join', 'featurehouse')(spine, spine_columns, timestamp, requests)) }}
{% endmacro %}


{#- The spine's columns and a row number: every spine row is one output row. -#}
{% macro pit_spine(spine, spine_columns) %}
  {{ return(adapter.dispatch('pit_spine', 'featurehouse')(spine, spine_columns)) }}
{% endmacro %}

{% macro default__pit_spine(spine, spine_columns) -%}
    select
        {%- for c in spine_columns %}
        {{ adapter.quote(c) }},
        {%- endfor %}
        row_number() over () as __fh_row
    from {{ spine }}
{%- endmacro %}

{#- Spark: row_number() needs an ORDER BY, and Spark reads the spine CTE anew for each view and for the output
    (it does not materialise a CTE), so the numbering must come out the same at every read. Ordering by every
    spine column does that: rows it cannot tell apart are equal in every column, so which of them gets which
    number changes no output row. (A spine column of a MAP type cannot be ordered: Spark refuses it.) -#}
{% macro spark__pit_spine(spine, spine_columns) -%}
    select
        {%- for c in spine_columns %}
        {{ adapter.quote(c) }},
        {%- endfor %}
        row_number() over (order by {% for c in spine_columns %}{{ adapter.quote(c) }}{{ ', ' if not loop.last }}{% endfor %}) as __fh_row
    from {{ spine }}
{%- endmacro %}


{#- The latest event time a spine row may see from a view: as_of minus its serving delay. -#}
{% macro pit_upper_bound(req, timestamp, alias='s') -%}
  {{ alias }}.{{ adapter.quote(timestamp) }}{% if req.serving_delay %} - {{ featurehouse.interval_of(req.serving_delay) }}{% endif %}
{%- endmacro %}


{#- Equal event times: greatest created_at, then greatest feature values in column order (NULLs lowest). -#}
{% macro pit_tie_break(req, alias=none) -%}
  {%- set prefix = (alias ~ '.') if alias else '' -%}
  {%- set parts = [] -%}
  {%- if req.created_at -%}{%- do parts.append(prefix ~ adapter.quote(req.created_at) ~ ' desc nulls last') -%}{%- endif -%}
  {%- for col in req.view_columns -%}
    {%- do parts.append(featurehouse.pit_sortable(prefix ~ adapter.quote(col.name), col) ~ ' desc nulls last') -%}
  {%- endfor -%}
  {{ parts | join(', ') }}
{%- endmacro %}


{#- Strings compare by code point on every engine. -#}
{% macro pit_sortable(expression, column) %}
  {{ return(adapter.dispatch('pit_sortable', 'featurehouse')(expression, column)) }}
{% endmacro %}

{% macro default__pit_sortable(expression, column) -%}{{ expression }}{%- endmacro %}

{% macro postgres__pit_sortable(expression, column) -%}
  {{ expression }}{% if column.is_string() %} collate "C"{% endif %}
{%- endmacro %}

{#- Spark compares strings as UTF-8 bytes (code point order) by default, but a Spark 4 column may be declared with a
    collation of its own (`string collate UTF8_LCASE`); dbt-spark's columns are `string`, which is_string() misses. -#}
{% macro spark__pit_sortable(expression, column) -%}
  {%- set t = (column.dtype or '') | lower | trim -%}
  {{ expression }}{% if t.startswith(('string', 'varchar', 'char')) %} collate utf8_binary{% endif %}
{%- endmacro %}


{#- Portable form: join every visible row, rank newest first, keep rank 1. -#}
{% macro default__point_in_time_join(spine, spine_columns, timestamp, requests) %}
with __fh_spine as (
{{ featurehouse.pit_spine(spine, spine_columns) }}
)
{%- for req in requests %},
__fh_v{{ loop.index0 }} as (
    select
        s.__fh_row,
        {%- for f in req.features %}
        {{ featurehouse.serving_value('f.' ~ adapter.quote(f), featurehouse.view_column(req, f)) }} as __fh_f{{ loop.index0 }},
        {%- endfor %}
        row_number() over (
            partition by s.__fh_row
            order by f.{{ adapter.quote(req.event_time) }} desc, {{ featurehouse.pit_tie_break(req, 'f') }}
        ) as __fh_rank
    from __fh_spine as s
    inner join {{ req.relation }} as f
        on {% for k in req['keys'] %}s.{{ adapter.quote(k) }} = f.{{ adapter.quote(k) }} and {% endfor -%}
        f.{{ adapter.quote(req.event_time) }} <= {{ featurehouse.pit_upper_bound(req, timestamp) }}
        {%- if req.ttl is not none %}
        and f.{{ adapter.quote(req.event_time) }} >= s.{{ adapter.quote(timestamp) }} - {{ featurehouse.interval_of(req.ttl) }}
        {%- endif %}
        {%- if req.as_known_at %}
        and f.{{ adapter.quote(req.created_at) }} <= s.{{ adapter.quote(timestamp) }}
        {%- endif %}
)
{%- endfor %}
select
    {%- for c in spine_columns %}
    s.{{ adapter.quote(c) }},
    {%- endfor %}
    {%- for req in requests %}{% set i = loop.index0 %}{% set last_view = loop.last %}
    {%- for f in req.features %}
    v{{ i }}.__fh_f{{ loop.index0 }} as {{ adapter.quote(req.name ~ '__' ~ f ~ req.suffix) }}{{ ',' if not (last_view and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from __fh_spine as s
{%- for req in requests %}
left join __fh_v{{ loop.index0 }} as v{{ loop.index0 }}
    on v{{ loop.index0 }}.__fh_row = s.__fh_row and v{{ loop.index0 }}.__fh_rank = 1
{%- endfor %}
{% endmacro %}


{#- DuckDB: ASOF LEFT JOIN on a view reduced to one row per (key, event time); TTL applied around it.
    ASOF allows one inequality, so "as known at" takes the portable form. -#}
{% macro duckdb__point_in_time_join(spine, spine_columns, timestamp, requests) %}
{%- if requests | selectattr('as_known_at') | list | length > 0 -%}
{{ return(featurehouse.default__point_in_time_join(spine, spine_columns, timestamp, requests)) }}
{%- endif %}
with __fh_spine as (
{{ featurehouse.pit_spine(spine, spine_columns) }}
)
{%- for req in requests %},
__fh_v{{ loop.index0 }} as (
    select
        {%- for k in req['keys'] %}
        {{ adapter.quote(k) }},
        {%- endfor %}
        {{ adapter.quote(req.event_time) }} as __fh_et
        {%- for f in req.features %},
        {{ featurehouse.serving_value(adapter.quote(f), featurehouse.view_column(req, f)) }} as __fh_f{{ loop.index0 }}
        {%- endfor %}
    from {{ req.relation }} as __fh_src
    where {{ adapter.quote(req.event_time) }} is not null
    qualify row_number() over (
        partition by {% for k in req['keys'] %}{{ adapter.quote(k) }}, {% endfor %}{{ adapter.quote(req.event_time) }}
        order by {{ featurehouse.pit_tie_break(req) }}
    ) = 1
)
{%- endfor %}
select
    {%- for c in spine_columns %}
    s.{{ adapter.quote(c) }},
    {%- endfor %}
    {%- for req in requests %}{% set i = loop.index0 %}{% set last_view = loop.last %}
    {%- for f in req.features %}
    {% if req.ttl is not none -%}
    case when v{{ i }}.__fh_et >= s.{{ adapter.quote(timestamp) }} - {{ featurehouse.interval_of(req.ttl) }} then v{{ i }}.__fh_f{{ loop.index0 }} end
    {%- else -%}
    v{{ i }}.__fh_f{{ loop.index0 }}
    {%- endif %} as {{ adapter.quote(req.name ~ '__' ~ f ~ req.suffix) }}{{ ',' if not (last_view and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from __fh_spine as s
{%- for req in requests %}{% set i = loop.index0 %}
asof left join __fh_v{{ i }} as v{{ i }}
    on {% for k in req['keys'] %}s.{{ adapter.quote(k) }} = v{{ i }}.{{ adapter.quote(k) }} and {% endfor -%}
    v{{ i }}.__fh_et <= {{ featurehouse.pit_upper_bound(req, timestamp) }}
{%- endfor %}
{% endmacro %}
