{#- The fraud model's spine: one row per transaction, labelled with hindsight. -#}
select
    transaction_id,
    user_id,
    card_id,
    merchant_id,
    transaction_at as label_time,
    is_fraud
from {{ ref('stg_transactions') }}
