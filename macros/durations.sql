{#- Durations as written in meta.featurehouse (90s, 15m, 1h, 7d, 1h30m) to seconds; none stays none. -#}
{% macro duration_seconds(text, model_name='', field='') %}
  {%- if text is none -%}{{ return(none) }}{%- endif -%}
  {%- if text is number -%}{{ return(text) }}{%- endif -%}
  {%- set units = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800} -%}
  {%- set s = (text | string).strip().lower().replace(' ', '') -%}
  {%- set parts = modules.re.findall('(\\d+(?:\\.\\d+)?)(ms|s|m|h|d|w)', s) -%}
  {%- set rebuilt = parts | map('join', '') | join('') -%}
  {%- if not parts or rebuilt != s -%}
    {{ exceptions.raise_compiler_error("model '" ~ model_name ~ "': meta.featurehouse." ~ field ~ ": bad duration '" ~ text ~ "' (use e.g. 90s, 15m, 1h, 7d)") }}
  {%- endif -%}
  {%- set ns = namespace(total=0) -%}
  {%- for number, unit in parts -%}{%- set ns.total = ns.total + (number | float) * units[unit] -%}{%- endfor -%}
  {{ return(ns.total) }}
{% endmacro %}


{#- `interval '<n> seconds'`, or microseconds when the duration has a fraction of a second. -#}
{% macro interval_of(seconds) %}
  {{ return(adapter.dispatch('interval_of', 'featurehouse')(seconds)) }}
{% endmacro %}

{% macro default__interval_of(seconds) -%}
  {%- set micros = (seconds * 1000000) | round | int -%}
  {%- if micros % 1000000 == 0 -%}interval '{{ (micros // 1000000) }} seconds'
  {%- else -%}interval '{{ micros }} microseconds'{%- endif -%}
{%- endmacro %}
