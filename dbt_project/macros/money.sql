{#- Round an amount to cents, staying a 64-bit double (PostgreSQL has no round(double, int)). -#}
{% macro money(expr) -%}
    cast(cast({{ expr }} as numeric(18, 2)) as {{ featurehouse.double_type() }})
{%- endmacro %}
