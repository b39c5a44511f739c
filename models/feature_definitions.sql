{#-
  The feature registry as a warehouse table: one row per feature view and version, read from dbt's
  graph at run time, so it is never a second hand-kept list.
-#}
{{ config(materialized='table') }}

{%- set rows = [] -%}
{%- if execute -%}
  {%- set entities = (var('featurehouse', {}) or {}).get('entities', {}) -%}
  {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
    {%- set block = (node.config.meta or {}).get('featurehouse') if node.resource_type == 'model' else none -%}
    {%- if block is mapping -%}
      {%- set keys = entities.get(block.entity, []) -%}
      {%- set keys = [keys] if keys is string else keys -%}
      {%- set skip = keys + [block.event_time, block.get('created_at')] -%}
      {%- set schema = {} -%}
      {%- for name, col in node.columns.items() -%}
        {%- if name not in skip and col.data_type -%}{%- do schema.update({name: col.data_type}) -%}{%- endif -%}
      {%- endfor -%}
      {%- do rows.append({
          'name': node.name,
          'version': featurehouse.feature_view_version(node),
          'entity_type': block.entity,
          'entity_keys': keys | join(','),
          'features': schema.keys() | list | join(','),
          'schema': tojson(schema),
          'transform_ref': node.unique_id ~ '@' ~ node.checksum.checksum,
          'relation': node.relation_name or '',
          'event_time': block.event_time,
          'created_at': block.get('created_at'),
          'owner': block.get('owner'),
          'freshness_slo': block.get('freshness_slo'),
          'ttl': block.get('ttl'),
          'serving_delay': block.get('serving_delay'),
          'sensitivity': block.get('sensitivity', 'internal'),
          'online': block.get('online', true),
          'tags': (block.get('tags', []) | join(',')),
          'description': block.get('description') or node.description or '',
      }) -%}
    {%- endif -%}
  {%- endfor -%}
{%- endif -%}

{%- set text_columns = ['name', 'entity_type', 'entity_keys', 'features', 'schema', 'transform_ref', 'relation',
                        'event_time', 'created_at', 'owner', 'freshness_slo', 'ttl', 'serving_delay',
                        'sensitivity', 'tags', 'description'] %}

{% for row in rows %}
select
    {%- for c in text_columns %}
    cast({{ featurehouse.sql_string(row[c]) }} as {{ dbt.type_string() }}) as {{ c }},
    {%- endfor %}
    cast({{ row.version }} as {{ dbt.type_int() }}) as version,
    {{ 'true' if row.online else 'false' }} as online
{{ 'union all' if not loop.last }}
{%- else %}
select
    {%- for c in text_columns %}
    cast(null as {{ dbt.type_string() }}) as {{ c }},
    {%- endfor %}
    cast(null as {{ dbt.type_int() }}) as version,
    cast(null as boolean) as online
where 1 = 0
{%- endfor %}
