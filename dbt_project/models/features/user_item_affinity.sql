{#-
  Per user and item, as of each interaction between them (the current one included): how much the
  user engaged with the item over the trailing 30 days, and what they did last.
-#}
with interactions as (
    select user_id, item_id, interaction_type, interaction_at, ingested_at
    from {{ ref('stg_interactions') }}
)

select
    user_id,
    item_id,
    interaction_at as event_time,
    max(ingested_at) over w_30d as created_at,
    count(*) over w_30d as interaction_count_30d,
    cast(sum(case when interaction_type = 'click' then 1 else 0 end) over w_30d as bigint) as click_count_30d,
    cast(sum(case when interaction_type = 'purchase' then 1 else 0 end) over w_30d as bigint) as purchase_count_30d,
    interaction_type as last_interaction_type
from interactions
window w_30d as (
    partition by user_id, item_id order by interaction_at range between interval '30 days' preceding and current row
)
