{#- `column_name` is never earlier than `other` (e.g. created_at >= event_time): no value known before it happened. -#}
{% test not_before(model, column_name, other) %}
select *
from {{ model }}
where {{ column_name }} < {{ other }}
{% endtest %}
