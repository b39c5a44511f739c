{#-
  Per card, as of each of its transactions (the current one included): velocity over the trailing hour
  and day - stolen cards show bursts of online spending minutes apart. created_at is the latest
  ingestion time among the rows the values depend on.
-#}
with transactions as (
    select card_id, transaction_at, ingested_at, amount, channel
    from {{ ref('stg_transactions') }}
),

stats as (
    select
        card_id,
        transaction_at as event_time,
        greatest(max(ingested_at) over w_24h, lag(ingested_at) over w_card) as created_at,
        count(*) over w_1h as txn_count_1h,
        count(*) over w_24h as txn_count_24h,
        cast(sum(case when channel = 'online' then 1 else 0 end) over w_1h as bigint) as online_txn_count_1h,
        {{ money('sum(amount) over w_1h') }} as amount_sum_1h,
        {{ money('sum(amount) over w_24h') }} as amount_sum_24h,
        max(amount) over w_24h as amount_max_24h,
        lag(transaction_at) over w_card as previous_at
    from transactions
    window
        w_card as (partition by card_id order by transaction_at),
        w_1h as (partition by card_id order by transaction_at range between interval '1 hour' preceding and current row),
        w_24h as (partition by card_id order by transaction_at range between interval '24 hours' preceding and current row)
)

select
    card_id,
    event_time,
    created_at,
    txn_count_1h,
    txn_count_24h,
    online_txn_count_1h,
    amount_sum_1h,
    amount_sum_24h,
    amount_max_24h,
    {{ seconds_between('previous_at', 'event_time') }} as seconds_since_previous_txn
from stats
