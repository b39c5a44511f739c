{#-
  latest_values: one row per entity of a feature view - its newest row by event time, ties broken as
  in point_in_time_join (docs/semantics.md). This is what the online store holds after a sync, so a
  model over it is the warehouse side of an online/offline parity check.

    {{ featurehouse.latest_values('user_txn_stats') }}          -- or 'user_txn_stats@2'
-#}
{% macro latest_values(view) %}
  {%- set name, _, version = (view | string).partition('@') -%}
  {%- set _ = ref(name) -%}
  {%- if not execute -%}{{ return('select 1 as parse_placeholder') }}{%- endif -%}
  {%- set requests = featurehouse.resolve_feature_requests([name ~ '.__all__' ~ ('@' ~ version if version else '')], all_columns=true) -%}
  {{ return(adapter.dispatch('latest_values', 'featurehouse')(requests[0])) }}
{% endmacro %}


{% macro default__latest_values(req) %}
select
    {%- for k in req['keys'] %}
    {{ adapter.quote(k) }},
    {%- endfor %}
    {{ adapter.quote(req.event_time) }},
    {%- if req.created_at %}
    {{ adapter.quote(req.created_at) }},
    {%- endif %}
    {%- for col in req.view_columns %}
    {{ featurehouse.serving_value(adapter.quote(col.name), col) }} as {{ adapter.quote(col.name) }}{{ ',' if not loop.last }}
    {%- endfor %}
from (
    select
        *,
        row_number() over (
            partition by {% for k in req['keys'] %}{{ adapter.quote(k) }}{{ ', ' if not loop.last }}{% endfor %}
            order by {{ adapter.quote(req.event_time) }} desc, {{ featurehouse.pit_tie_break(req) }}
        ) as __fh_rank
    from {{ req.relation }} as __fh_src
    where {{ adapter.quote(req.event_time) }} is not null
    {%- for k in req['keys'] %}
      and {{ adapter.quote(k) }} is not null
    {%- endfor %}
) as __fh_ranked
where __fh_rank = 1
{% endmacro %}
