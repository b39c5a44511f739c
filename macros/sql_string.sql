{#- A SQL string literal (or null) for a value taken from dbt's graph. -#}
{% macro sql_string(value) -%}
  {{ return(adapter.dispatch('sql_string', 'featurehouse')(value)) }}
{%- endmacro %}

{% macro default__sql_string(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{#- Spark SQL reads a backslash in a string literal as an escape (spark.sql.parser.escapedStringLiterals is off
    by default), so backslashes are doubled too. -#}
{% macro spark__sql_string(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("\\", "\\\\").replace("'", "''") }}'{%- endif -%}
{%- endmacro %}
