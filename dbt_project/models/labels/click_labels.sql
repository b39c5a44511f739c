{#- The recommender's spine: one row per item view (impression), clicked if the user clicked the item later in the same session. -#}
with interactions as (
    select * from {{ ref('stg_interactions') }}
),

clicks as (
    select session_id, user_id, item_id, max(interaction_at) as last_click_at
    from interactions
    where interaction_type = 'click'
    group by session_id, user_id, item_id
)

select
    v.interaction_id,
    v.user_id,
    v.item_id,
    v.interaction_at as label_time,
    coalesce(c.last_click_at > v.interaction_at, false) as clicked
from interactions as v
left join clicks as c
    on c.session_id = v.session_id and c.user_id = v.user_id and c.item_id = v.item_id
where v.interaction_type = 'view'
