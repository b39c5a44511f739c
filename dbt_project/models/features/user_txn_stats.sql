{#-
  Per user, as of each of their transactions (the current one included): how much and how often they
  spent over the trailing hour, day and week. A row's value is only complete once every transaction in
  its 7-day window has landed, so created_at is the latest ingestion time in that window.
-#}
with transactions as (
    select user_id, transaction_at, ingested_at, amount
    from {{ ref('stg_transactions') }}
)

select
    user_id,
    transaction_at as event_time,
    max(ingested_at) over w_7d as created_at,
    count(*) over w_1h as txn_count_1h,
    count(*) over w_24h as txn_count_24h,
    count(*) over w_7d as txn_count_7d,
    {{ money('sum(amount) over w_24h') }} as amount_sum_24h,
    {{ money('sum(amount) over w_7d') }} as amount_sum_7d,
    max(amount) over w_7d as amount_max_7d
from transactions
window
    w_1h as (partition by user_id order by transaction_at range between interval '1 hour' preceding and current row),
    w_24h as (partition by user_id order by transaction_at range between interval '24 hours' preceding and current row),
    w_7d as (partition by user_id order by transaction_at range between interval '7 days' preceding and current row)
