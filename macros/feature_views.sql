{#-
  Look feature views up in dbt's graph, the way the Python registry reads the manifest:
  a model with meta.featurehouse, named by its model name, at its featurehouse version
  (meta version, else the dbt model version, else 1).
-#}
{% macro feature_view_version(node) %}
  {%- set block = node.config.meta.featurehouse -%}
  {{ return((block.get('version') if block.get('version') is not none else (node.get('version') if node.get('version') is not none else 1)) | int) }}
{% endmacro %}


{#- Every feature view node of dbt's graph (a model with a meta.featurehouse mapping), by unique_id. -#}
{% macro feature_view_nodes() %}
  {%- set nodes = [] -%}
  {%- for node in graph.nodes.values() | sort(attribute='unique_id') -%}
    {%- if node.resource_type == 'model' and (node.config.meta or {}).get('featurehouse') is mapping -%}
      {%- do nodes.append(node) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(nodes) }}
{% endmacro %}


{#- The key columns of an entity type in vars.featurehouse.entities: [a, b], a, or {keys: [a, b]}. -#}
{% macro entity_keys(entity) %}
  {%- set keys = (var('featurehouse', {}) or {}).get('entities', {}).get(entity, []) -%}
  {%- if keys is mapping -%}{%- set keys = keys.get('keys') or keys.get('key_columns') or [] -%}{%- endif -%}
  {{ return([keys] if keys is string else keys | list) }}
{% endmacro %}


{#- The columns of a feature view that are not features: its entity keys, event_time and created_at. -#}
{% macro non_feature_columns(node) %}
  {%- set block = node.config.meta.featurehouse -%}
  {{ return(featurehouse.entity_keys(block.entity) + ([block.event_time, block.get('created_at')] | select | list)) }}
{% endmacro %}


{#- Where featurehouse keeps its own tables (version log, stream landing tables): vars.featurehouse.schema,
    default featurehouse - the same variable the Python catalog reads (featurehouse/catalog/). -#}
{% macro catalog_schema() %}
  {{ return(((var('featurehouse', {}) or {}).get('schema') or 'featurehouse') | string) }}
{% endmacro %}


{% macro find_feature_view(view_name, version=none) %}
  {%- set found = featurehouse.feature_view_nodes() | selectattr('name', 'equalto', view_name) | list -%}
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
  {%- set log = adapter.get_relation(database=target.database, schema=featurehouse.catalog_schema(), identifier='featurehouse_view_versions') -%}
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
      {%- set keys = featurehouse.entity_keys(block.entity) -%}
      {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=(node.alias or node.name)) -%}
      {%- set skip = featurehouse.non_feature_columns(node) -%}
      {%- set view_columns = [] -%}
      {%- for col in adapter.get_columns_in_relation(relation) -%}
        {%- if col.name not in skip -%}{%- do view_columns.append(col) -%}{%- endif -%}
      {%- endfor -%}
      {#- rows pushed through the stream land in a table of their own, read with the model -#}
      {%- set version_number = featurehouse.feature_view_version(node) -%}
      {%- set landing = adapter.get_relation(database=target.database, schema=featurehouse.catalog_schema(),
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
            'as_known_at': known_at, 'view_columns': view_columns, 'features': [], 'node': node}) -%}
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


{#-
  The columns of each relation in `relations` (a CTE or table with the columns name, version,
  relation_database, relation_schema, relation_identifier) as the warehouse has them built now, in order:
  name, version, column_name, column_position, data_type. The type names are those the Python registry's
  warehouse describe reads (information_schema.columns.data_type), so both spell a type alike.
-#}
{% macro relation_columns(relations, views=[]) %}
  {{ return(adapter.dispatch('relation_columns', 'featurehouse')(relations, views)) }}
{% endmacro %}

{% macro default__relation_columns(relations, views=[]) %}
    select
        r.name,
        r.version,
        cast(c.column_name as {{ dbt.type_string() }}) as column_name,
        cast(c.ordinal_position as {{ dbt.type_int() }}) as column_position,
        cast(c.data_type as {{ dbt.type_string() }}) as data_type
    from {{ relations }} as r
    inner join information_schema.columns as c
        on c.table_name = r.relation_identifier
        and (r.relation_schema is null or c.table_schema = r.relation_schema)
        and (r.relation_database is null or c.table_catalog = r.relation_database)
{%- endmacro %}

{#-
  Spark has no information_schema: the columns are read from the catalog when the model runs
  (adapter.get_columns_in_relation) and written as literal rows, so the view holds the relations as they
  were built at its last run: in a first `dbt build` it runs before them, so run it again after
  (`dbt run -s feature_definitions`). The Python registry describes the relations itself.
-#}
{% macro spark__relation_columns(relations, views=[]) %}
  {%- set rows = [] -%}
  {%- if execute -%}
    {%- for view in views -%}
      {%- set relation = adapter.get_relation(database=none, schema=view.relation_schema,
                                              identifier=view.relation_identifier) -%}
      {%- if relation is not none -%}
        {%- for column in adapter.get_columns_in_relation(relation) -%}
          {%- do rows.append({'name': view.name, 'version': view.version, 'column_name': column.name,
                              'column_position': loop.index, 'data_type': column.dtype}) -%}
        {%- endfor -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{- featurehouse.literal_rows(rows, {'name': 'string', 'version': 'int', 'column_name': 'string',
                                       'column_position': 'int', 'data_type': 'string'}) }}
{%- endmacro %}


{#-
  Rows of Jinja values as a select: `columns` maps each column name to its type ('string', 'int' or
  'boolean'). The first row names and casts the columns, the others follow one a line; no rows give
  an empty select of the same columns.
-#}
{% macro literal_rows(rows, columns) %}
  {%- set types = {'string': dbt.type_string(), 'int': dbt.type_int(), 'boolean': dbt.type_boolean()} -%}
  {%- for row in rows or [none] %}
    {%- if loop.first %}
    select
        {%- for name, type in columns.items() %}
        cast({{ featurehouse.sql_literal(row[name] if row else none) }} as {{ types[type] }}) as {{ name }}
        {{- ',' if not loop.last }}
        {%- endfor %}
    {%- if not rows %}
    where 1 = 0
    {%- endif %}
    {%- else %}
    union all select
        {%- for name in columns %} {{ featurehouse.sql_literal(row[name]) }}{{ ',' if not loop.last }}{% endfor %}
    {%- endif %}
  {%- endfor %}
{%- endmacro %}


{#- A Jinja value as a SQL literal: null, true/false, a number, or a quoted string. -#}
{% macro sql_literal(value) %}
  {%- if value is none -%}null
  {%- elif value is sameas true or value is sameas false -%}{{ 'true' if value else 'false' }}
  {%- elif value is number -%}{{ value }}
  {%- else -%}{{ featurehouse.sql_string(value) }}
  {%- endif -%}
{% endmacro %}


{#- string_agg of `measure` in `order_by`'s order: dbt.listagg, whose Spark form drops the order (with a warning). -#}
{% macro ordered_listagg(measure, delimiter_text, order_by) %}
  {{ return(adapter.dispatch('ordered_listagg', 'featurehouse')(measure, delimiter_text, order_by)) }}
{% endmacro %}

{% macro default__ordered_listagg(measure, delimiter_text, order_by) -%}
  {{ dbt.listagg(measure, delimiter_text, 'order by ' ~ order_by) }}
{%- endmacro %}

{#- Spark: the values collected with their sort key, sorted, joined. -#}
{% macro spark__ordered_listagg(measure, delimiter_text, order_by) -%}
  array_join(transform(array_sort(collect_list(struct({{ order_by }} as k, {{ measure }} as v))), x -> x.v), {{ delimiter_text }})
{%- endmacro %}


{#- A string expression as a JSON string: quoted, with backslashes and double quotes escaped. -#}
{% macro json_string(expression) -%}
  {#- chr(92) is a backslash: Spark SQL would read one inside a string literal as an escape -#}
  '"' || replace(replace({{ expression }}, chr(92), chr(92) || chr(92)), '"', chr(92) || '"') || '"'
{%- endmacro %}


{#-
  A feature value as it is trained on and served (docs/semantics.md, "Types"): 128-bit and unbounded
  integers (HUGEINT, UHUGEINT, BIGNUM) as BIGINT, DECIMAL/NUMERIC as a double; every other type as it
  is. The same rule as featurehouse.types.serving_cast in Python, so the macros' training sets and the
  Python ones hold the same types. Rankings and tie-breaks use the raw column.
-#}
{% macro serving_value(expression, column) %}
  {{ return(adapter.dispatch('serving_value', 'featurehouse')(expression, column)) }}
{% endmacro %}

{% macro default__serving_value(expression, column) -%}
  {%- set t = ((column.dtype if column is not none else '') or '') | upper | trim -%}
  {%- if t.startswith(('HUGEINT', 'UHUGEINT', 'INT128', 'UINT128', 'INT256', 'UINT256', 'BIGNUM', 'VARINT')) -%}
    cast({{ expression }} as bigint)
  {%- elif t.startswith(('DECIMAL', 'NUMERIC')) -%}
    cast({{ expression }} as {{ featurehouse.double_type() }})
  {%- else -%}
    {{ expression }}
  {%- endif -%}
{%- endmacro %}


{#- A 64-bit float's type name: dbt.type_float() is 32-bit REAL on DuckDB, so it is not used. -#}
{% macro double_type() %}
  {{ return(adapter.dispatch('double_type', 'featurehouse')()) }}
{% endmacro %}

{% macro default__double_type() %}{{ return('double') }}{% endmacro %}

{#- PostgreSQL has no type named double. -#}
{% macro postgres__double_type() %}{{ return('double precision') }}{% endmacro %}


{#- The column named `name` of a request's view (from the built relation). -#}
{% macro view_column(req, name) %}
  {{ return(req.view_columns | selectattr('name', 'equalto', name) | first) }}
{% endmacro %}
