{#-
  The access policy in dbt, as featurehouse/access/policy.py decides it (docs/security.md); a test
  (tests/test_governance.py) proves the two agree on generated policies.

  A team may read a feature view when the view is public or internal, when the team owns it, or when
  the view's meta.featurehouse.shared_with holds a grant to the team whose `until` (a date, inclusive,
  UTC) has not passed. A project without vars.featurehouse.teams has no policy: every read is allowed.
-#}
{% macro team_may_read(team, node, today=none) %}
  {{ return(featurehouse.access_denial(team, node, today) is none) }}
{% endmacro %}


{#- Why `team` may not read the feature view `node` (a sentence), or none when it may. -#}
{% macro access_denial(team, node, today=none) %}
  {%- if not (var('featurehouse', {}) or {}).get('teams') -%}{{ return(none) }}{%- endif -%}
  {%- set today = today or run_started_at.strftime('%Y-%m-%d') -%}
  {%- set block = node.config.meta.featurehouse -%}
  {%- set sensitivity = block.get('sensitivity', 'internal') -%}
  {%- if sensitivity in ['public', 'internal'] or block.get('owner') == team -%}{{ return(none) }}{%- endif -%}
  {%- set expired = [] -%}
  {%- for grant in block.get('shared_with') or [] -%}
    {%- if grant.get('team') == team -%}
      {%- if grant.get('until') is none or (grant.get('until') | string) >= today -%}{{ return(none) }}{%- endif -%}
      {%- do expired.append(grant.get('until') | string) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(node.name ~ " is " ~ sensitivity ~ ", owned by team '" ~ block.get('owner') ~ "', and team '" ~ team ~ "' "
            ~ ("had a grant that expired on " ~ expired[0] if expired else "has no grant")) }}
{% endmacro %}


{#- The exposure named `name` (an ML model), or a compilation error listing those that exist. -#}
{% macro find_exposure(name) %}
  {%- for exposure in graph.exposures.values() -%}
    {%- if exposure.name == name -%}{{ return(exposure) }}{%- endif -%}
  {%- endfor -%}
  {{ exceptions.raise_compiler_error("unknown exposure '" ~ name ~ "' (exposures: "
                                     ~ (graph.exposures.values() | map(attribute='name') | sort | join(', ')) ~ ")") }}
{% endmacro %}


{#- The team an exposure belongs to: its meta.featurehouse.team. -#}
{% macro exposure_team(exposure) %}
  {%- set meta = (exposure.config or {}).get('meta') or exposure.meta or {} -%}
  {{ return((meta.get('featurehouse') or {}).get('team')) }}
{% endmacro %}


{#- Fail compilation when a team that will use this training model may not read one of its feature views:
    the exposure named by `exposure`, and every exposure that depends on the model being compiled. -#}
{% macro check_training_access(requests, exposure=none) %}
  {%- set users = [] -%}
  {%- if exposure -%}{%- do users.append(featurehouse.find_exposure(exposure)) -%}{%- endif -%}
  {%- for e in graph.exposures.values() | sort(attribute='name') -%}
    {%- if model.unique_id in ((e.depends_on or {}).get('nodes') or []) and e not in users -%}{%- do users.append(e) -%}{%- endif -%}
  {%- endfor -%}
  {%- for e in users -%}
    {%- set team = featurehouse.exposure_team(e) -%}
    {%- for req in requests -%}
      {%- set why = featurehouse.access_denial(team, req.node) -%}
      {%- if why is not none -%}
        {{ exceptions.raise_compiler_error("model '" ~ model.name ~ "' is for exposure '" ~ e.name ~ "' of team '"
                                           ~ team ~ "', which may not read feature view '" ~ req.name ~ "': " ~ why
                                           ~ "; add the team to meta.featurehouse.shared_with of model '" ~ req.node.name
                                           ~ "' (with a purpose), or drop the feature") }}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
{% endmacro %}
