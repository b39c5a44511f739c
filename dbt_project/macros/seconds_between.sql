{#- The seconds from one timestamp to a later one, as a double. Dispatched: Spark SQL has no epoch of an interval. -#}
{% macro seconds_between(earlier, later) -%}
  {{ return(adapter.dispatch('seconds_between')(earlier, later)) }}
{%- endmacro %}

{% macro default__seconds_between(earlier, later) -%}
    cast(extract(epoch from ({{ later }} - {{ earlier }})) as {{ featurehouse.double_type() }})
{%- endmacro %}

{% macro spark__seconds_between(earlier, later) -%}
    (unix_micros(cast({{ later }} as timestamp)) - unix_micros(cast({{ earlier }} as timestamp))) / 1000000.0d
{%- endmacro %}
