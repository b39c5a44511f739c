{#- Round an amount to cents, staying double precision (PostgreSQL has no round(double, int)). -#}
{% macro money(expr) -%}
    cast(cast({{ expr }} as numeric(18, 2)) as double precision)
{%- endmacro %}
