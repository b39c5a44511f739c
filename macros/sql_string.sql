{#- A SQL string literal (or null) for a value taken from dbt's graph. -#}
{% macro sql_string(value) -%}
  {%- if value is none -%}null{%- else -%}'{{ (value | string).replace("'", "''") }}'{%- endif -%}
{%- endmacro %}
