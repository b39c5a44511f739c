{#-
  Daily snapshot per listed item at each day's end (event_time), computed an hour later (created_at)
  from the interactions that had landed by then.
-#}
with interactions as (
    select
        item_id,
        interaction_type,
        cast(date_trunc('day', greatest(interaction_at, ingested_at - interval '1 hour')) as timestamp)
            + interval '1 day' as snapshot_time
    from {{ ref('stg_interactions') }}
),

snapshots as (
    -- the day ends the snapshot job has run for: a day still under way has no snapshot yet
    select cast(snapshot_time as timestamp) as snapshot_time
    from {{ source('raw', 'snapshot_runs') }}
),

grid as (
    select i.item_id, s.snapshot_time
    from {{ ref('stg_items') }} as i
    cross join snapshots as s
    where i.listed_at < s.snapshot_time
),

counts as (
    select
        item_id,
        snapshot_time,
        sum(case when interaction_type = 'view' then 1 else 0 end) as views,
        sum(case when interaction_type = 'click' then 1 else 0 end) as clicks,
        sum(case when interaction_type = 'purchase' then 1 else 0 end) as purchases
    from interactions
    group by item_id, snapshot_time
),

daily as (
    select
        g.item_id,
        g.snapshot_time,
        cast(coalesce(c.views, 0) as bigint) as views,
        cast(coalesce(c.clicks, 0) as bigint) as clicks,
        cast(coalesce(c.purchases, 0) as bigint) as purchases
    from grid as g
    left join counts as c on c.item_id = g.item_id and c.snapshot_time = g.snapshot_time
),

windowed as (
    select
        item_id,
        snapshot_time,
        views,
        clicks,
        cast(sum(views) over w_7d as bigint) as views_7d,
        cast(sum(clicks) over w_7d as bigint) as clicks_7d,
        cast(sum(purchases) over w_7d as bigint) as purchases_7d
    from daily
    window w_7d as (partition by item_id order by snapshot_time range between interval '6 days' preceding and current row)
)

select
    item_id,
    snapshot_time as event_time,
    snapshot_time + interval '1 hour' as created_at,
    views as views_24h,
    clicks as clicks_24h,
    views_7d,
    purchases_7d,
    cast(clicks_7d as {{ featurehouse.double_type() }}) / nullif(views_7d, 0) as ctr_7d
from windowed
