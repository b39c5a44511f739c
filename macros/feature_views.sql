{#-
  Look feature views up in dbt's graph, the way the Python registry reads the manifest:
  a model with meta.featurehouse, named by its model name, at its featurehouse version
  (meta version, else the dbt model version, else 1).
-#}
{% macro feature_view_version(node) %}
  {%- set block = node.config.meta.featurehouse -%}
  {{ return((block.get('version') if block.get('version') is not none else (node.get('version') if node.get('version') is not none else 1)) | int) }}
{% endmacro %}


{% macro find_feature_view(view_name, version=none) %}
  {%- set found = [] -%}
  {%- for node in graph.nodes.values() -%}
    {%- if node.resource_type == 'model' and node.name == view_name and (node.config.meta or {}).get('featurehouse') is mapping -%}
      {%- do found.append(node) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if not found -%}
    {{ exceptions.raise_compiler_error("unknown feature view '" ~ view_name ~ "'") }}
  {%- endif -%}
  {%- set by_version = {} -%}
  {%- for node in found -%}{%- do by_version.update({featurehouse.feature_view_version(node): node}) -%}{%- endfor -%}
  {%- if version is none -%}
    {%- set version = featurehouse.active_view_version(view_name, by_version.keys() | list) -%}
  {%- endif -%}
  {%- if version not in by_version -%}
    {{ exceptions.raise_compiler_error("feature view '" ~ view_name ~ "' has no version " ~ version) }}
  {%- endif -%}
  {{ return(by_version[version]) }}
{% endmacro %}


{#- The promoted version (featurehouse promote) if any, else the first declared one: as in Python. -#}
{% macro active_view_version(view_name, versions) %}
  {%- set log = adapter.get_relation(database=target.database, schema='featurehouse', identifier='featurehouse_view_versions') -%}
  {%- if log is not none -%}
    {%- set result = run_query("select version from " ~ log ~ " where " ~ adapter.quote('view') ~ " = '"
                                ~ view_name.replace("'", "''") ~ "' and active_until is null") -%}
    {%- if result.rows | length > 0 and (result.rows[0][0] | int) in versions -%}
      {{ return(result.rows[0][0] | int) }}
    {%- endif -%}
  {%- endif -%}
  {{ return(versions | min) }}
{% endmacro %}


{#-
  Group requested features ('view.column' or 'view.column@N') by view and version, with all that the
  join needs: relation, key columns, timestamps, TTL, serving delay and the view's feature columns.
-#}
{% macro resolve_feature_requests(features, as_known_at=false, all_columns=false) %}
  {%- set entities = (var('featurehouse', {}) or {}).get('entities', {}) -%}
  {%- set requests = [] -%}
  {%- set index = {} -%}
  {%- for text in features -%}
    {%- set m = modules.re.match('^([^.@\\s]+)\\.([^@]+?)(?:@(\\d+))?$', text | trim) -%}
    {%- if not m -%}
      {{ exceptions.raise_compiler_error("bad feature name '" ~ text ~ "': expected view.column or view.column@version") }}
    {%- endif -%}
    {%- set view_name, column = m.group(1), m.group(2) -%}
    {%- set version = m.group(3) | int if m.group(3) else none -%}
    {%- set node = featurehouse.find_feature_view(view_name, version) -%}
    {%- set block = node.config.meta.featurehouse -%}
    {%- set key = view_name ~ '@' ~ featurehouse.feature_view_version(node) -%}
    {%- if key not in index -%}
      {%- if block.entity not in entities -%}
        {{ exceptions.raise_compiler_error("model '" ~ node.name ~ "': meta.featurehouse.entity: unknown entity '" ~ block.entity ~ "'") }}
      {%- endif -%}
      {%- set keys = entities[block.entity] if entities[block.entity] is not string else [entities[block.entity]] -%}
      {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=(node.alias or node.name)) -%}
      {%- set skip = keys + [block.event_time, block.get('created_at')] -%}
      {%- set view_columns = [] -%}
      {%- for col in adapter.get_columns_in_relation(relation) -%}
        {%- if col.name not in skip -%}{%- do view_columns.append(col) -%}{%- endif -%}
      {%- endfor -%}
      {#- rows pushed through the stream land in a table of their own, read with the model -#}
      {%- set version_number = featurehouse.feature_view_version(node) -%}
      {%- set landing = adapter.get_relation(database=target.database, schema='featurehouse',
                                             identifier='stream__' ~ view_name ~ '__v' ~ version_number) -%}
      {%- if landing is not none -%}
        {%- set cols = [] -%}
        {%- for c in keys + [block.event_time] + ([block.get('created_at')] if block.get('created_at') else []) + (view_columns | map(attribute='name') | list) -%}
          {%- do cols.append(adapter.quote(c)) -%}
        {%- endfor -%}
        {%- set relation = '(select ' ~ cols | join(', ') ~ ' from ' ~ relation ~ ' union all select '
                           ~ cols | join(', ') ~ ' from ' ~ landing ~ ')' -%}
      {%- endif -%}
      {%- set known_at = as_known_at or block.get('as_known_at', false) -%}
      {%- if known_at and not block.get('created_at') -%}
        {{ exceptions.raise_compiler_error("feature view '" ~ key ~ "' has no created_at column, so it cannot be read 'as known at'") }}
      {%- endif -%}
      {%- do index.update({key: requests | length}) -%}
      {%- do requests.append({
            'name': view_name, 'version': featurehouse.feature_view_version(node), 'relation': relation,
            'keys': keys, 'event_time': block.event_time, 'created_at': block.get('created_at'),
            'ttl': featurehouse.duration_seconds(block.get('ttl'), node.name, 'ttl'),
            'serving_delay': featurehouse.duration_seconds(block.get('serving_delay'), node.name, 'serving_delay'),
            'as_known_at': known_at, 'view_columns': view_columns, 'features': []}) -%}
    {%- endif -%}
    {%- set req = requests[index[key]] -%}
    {%- if all_columns -%}
      {%- do req.update({'features': featurehouse.view_columns_names(req.view_columns)}) -%}
    {%- elif column not in featurehouse.view_columns_names(req.view_columns) -%}
      {{ exceptions.raise_compiler_error("unknown feature '" ~ text ~ "': view '" ~ key ~ "' has no feature column '" ~ column ~ "'") }}
    {%- endif -%}
    {%- if not all_columns and column not in req.features -%}{%- do req.features.append(column) -%}{%- endif -%}
  {%- endfor -%}
  {#- two versions of one view in a request: columns are view__column__vN -#}
  {%- for req in requests -%}
    {%- set same = requests | selectattr('name', 'equalto', req.name) | list -%}
    {%- do req.update({'suffix': ('__v' ~ req.version) if same | length > 1 else ''}) -%}
  {%- endfor -%}
  {{ return(requests) }}
{% endmacro %}


{% macro view_columns_names(columns) %}
  {{ return(columns | map(attribute='name') | list) }}
{% endmacro %}
