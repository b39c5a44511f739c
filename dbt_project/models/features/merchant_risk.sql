{#-
  Daily snapshot per merchant, taken at each day's end (event_time) by a job that runs an hour later
  (created_at). A snapshot counts the transactions that had landed by then - a late arrival counts in
  the first snapshot that could see it - and the chargebacks filed during the day. Chargebacks come in
  weeks after the fraud, so the 30-day rate is what was known, not what the labels later say.
-#}
with transactions as (
    select
        merchant_id,
        amount,
        cast(date_trunc('day', greatest(transaction_at, ingested_at - interval '1 hour')) as timestamp)
            + interval '1 day' as snapshot_time
    from {{ ref('stg_transactions') }}
),

chargebacks as (
    select
        merchant_id,
        cast(date_trunc('day', chargeback_at) as timestamp) + interval '1 day' as snapshot_time
    from {{ ref('stg_transactions') }}
    where chargeback_at is not null
),

snapshots as (
    -- the day ends the snapshot job has run for: a day still under way has no snapshot yet
    select cast(snapshot_time as timestamp) as snapshot_time
    from {{ source('raw', 'snapshot_runs') }}
),

grid as (
    select m.merchant_id, s.snapshot_time
    from {{ ref('stg_merchants') }} as m
    cross join snapshots as s
    where m.onboarded_at < s.snapshot_time
),

daily as (
    select
        g.merchant_id,
        g.snapshot_time,
        coalesce(t.txn_count, 0) as txn_count,
        coalesce(t.amount_sum, 0) as amount_sum,
        coalesce(c.chargeback_count, 0) as chargeback_count
    from grid as g
    left join (
        select merchant_id, snapshot_time, count(*) as txn_count, sum(amount) as amount_sum
        from transactions
        group by merchant_id, snapshot_time
    ) as t on t.merchant_id = g.merchant_id and t.snapshot_time = g.snapshot_time
    left join (
        select merchant_id, snapshot_time, count(*) as chargeback_count
        from chargebacks
        group by merchant_id, snapshot_time
    ) as c on c.merchant_id = g.merchant_id and c.snapshot_time = g.snapshot_time
),

windowed as (
    select
        merchant_id,
        snapshot_time,
        txn_count,
        cast(sum(txn_count) over w_30d as bigint) as txn_count_30d,
        cast(sum(chargeback_count) over w_30d as bigint) as chargeback_count_30d,
        sum(amount_sum) over w_30d as amount_sum_30d
    from daily
    window w_30d as (partition by merchant_id order by snapshot_time range between interval '29 days' preceding and current row)
)

select
    merchant_id,
    snapshot_time as event_time,
    snapshot_time + interval '1 hour' as created_at,
    cast(txn_count as bigint) as txn_count_24h,
    txn_count_30d,
    chargeback_count_30d,
    cast(chargeback_count_30d as {{ featurehouse.double_type() }}) / nullif(txn_count_30d, 0) as chargeback_rate_30d,
    amount_sum_30d / nullif(txn_count_30d, 0) as amount_avg_30d
from windowed
