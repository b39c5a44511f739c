{#-
  The feature registry as a warehouse view: one row per feature view and version. The views and their
  settings come from dbt's graph (as of this model's last build), their features from the relations as
  built when the view is queried, so it lists what the Python registry (featurehouse/registry/manifest.py)
  lists, and is never a second hand-kept list.

  A feature, as in the Python registry: a column of the built relation, in the relation's order (the
  YAML-declared columns while it is not built), typed by its declared data_type else by the relation's
  type, that is not an entity key, event_time or created_at, and has a type.

  Why a view that reads information_schema, and not a table rendered from adapter.get_columns_in_relation():
  dbt runs a model after the models it ref()s only, and refs must be known when dbt parses, where `graph`
  is still empty - so this model cannot depend on "every feature view". Having no parents, it runs first
  in a fresh `dbt build`, before any feature view exists, and a table would miss every feature typed by
  its relation. A view reads the catalog when queried, whatever order dbt built the models in.
-#}
{{ config(materialized='view') }}

{%- set views, declared_columns, non_feature_columns = [], [], [] -%}
{%- if execute -%}
  {%- for node in featurehouse.feature_view_nodes() -%}
    {%- set block = node.config.meta.featurehouse -%}
    {%- set key = {'name': node.name, 'version': featurehouse.feature_view_version(node)} -%}
    {%- do views.append(dict(key,
        entity_type=block.entity,
        entity_keys=featurehouse.entity_keys(block.entity) | join(','),
        transform_ref=node.unique_id ~ '@' ~ node.checksum.checksum,
        relation=node.relation_name or '',
        relation_database=node.database,
        relation_schema=node.schema,
        relation_identifier=node.alias or node.name,
        event_time=block.event_time,
        created_at=block.get('created_at'),
        owner=block.get('owner'),
        freshness_slo=block.get('freshness_slo'),
        ttl=block.get('ttl'),
        serving_delay=block.get('serving_delay'),
        sensitivity=block.get('sensitivity', 'internal'),
        online=block.get('online', true),
        tags=block.get('tags', []) | join(','),
        description=block.get('description') or node.description or '')) -%}
    {%- for name, column in node.columns.items() -%}
      {%- do declared_columns.append(dict(key, column_name=name, column_position=loop.index,
                                          data_type=column.data_type or none)) -%}
    {%- endfor -%}
    {%- for name in featurehouse.non_feature_columns(node) -%}
      {%- do non_feature_columns.append(dict(key, column_name=name)) -%}
    {%- endfor -%}
  {%- endfor -%}
{%- endif -%}

{%- set text_settings = ['entity_type', 'entity_keys', 'transform_ref', 'relation', 'relation_database',
                         'relation_schema', 'relation_identifier', 'event_time', 'created_at', 'owner',
                         'freshness_slo', 'ttl', 'serving_delay', 'sensitivity'] -%}
{%- set view_columns = {'name': 'string', 'version': 'int'} -%}
{%- for c in text_settings %}{% do view_columns.update({c: 'string'}) %}{% endfor -%}
{%- do view_columns.update({'online': 'boolean', 'tags': 'string', 'description': 'string'}) -%}

with feature_views as (
    {{- featurehouse.literal_rows(views, view_columns) }}
),

declared_columns as (
    -- the columns declared in YAML, in declared order; data_type is null where none is declared
    {{- featurehouse.literal_rows(declared_columns, {'name': 'string', 'version': 'int', 'column_name': 'string',
                                                     'column_position': 'int', 'data_type': 'string'}) }}
),

non_feature_columns as (
    -- entity keys, event_time and created_at
    {{- featurehouse.literal_rows(non_feature_columns, {'name': 'string', 'version': 'int', 'column_name': 'string'}) }}
),

built_columns as (
    {{- featurehouse.relation_columns('feature_views', views) }}
),

view_columns as (
    -- a built view: the relation's columns in its order, the declared type first
    select b.name, b.version, b.column_name, b.column_position, coalesce(d.data_type, b.data_type) as data_type
    from built_columns as b
    left join declared_columns as d
        on d.name = b.name and d.version = b.version and d.column_name = b.column_name

    union all

    -- a view not built yet: its declared columns
    select d.name, d.version, d.column_name, d.column_position, d.data_type
    from declared_columns as d
    where not exists (select 1 from built_columns as b where b.name = d.name and b.version = d.version)
),

features as (
    select
        c.name,
        c.version,
        c.column_name,
        c.column_position,
        {{ featurehouse.json_string('c.column_name') }} || ': '
            || {{ featurehouse.json_string('c.data_type') }} as schema_entry
    from view_columns as c
    where c.data_type is not null
        and not exists (
            select 1 from non_feature_columns as n
            where n.name = c.name and n.version = c.version and n.column_name = c.column_name
        )
),

feature_lists as (
    select
        name,
        version,
        {{ featurehouse.ordered_listagg('column_name', "','", 'column_position') }} as features,
        '{' || {{ featurehouse.ordered_listagg('schema_entry', "', '", 'column_position') }} || '}' as schema
    from features
    group by name, version
)

select
    v.name,
    v.version,
    v.entity_type,
    v.entity_keys,
    coalesce(f.features, '') as features,
    coalesce(f.schema, '{}') as schema,
    v.transform_ref,
    v.relation,
    v.event_time,
    v.created_at,
    v.owner,
    v.freshness_slo,
    v.ttl,
    v.serving_delay,
    v.sensitivity,
    v.online,
    v.tags,
    v.description
from feature_views as v
left join feature_lists as f
    on f.name = v.name and f.version = v.version
