select
    cast(transaction_id as bigint) as transaction_id,
    cast(card_id as bigint) as card_id,
    cast(user_id as bigint) as user_id,
    cast(merchant_id as bigint) as merchant_id,
    cast(amount as {{ featurehouse.double_type() }}) as amount,
    cast(channel as {{ dbt.type_string() }}) as channel,
    is_fraud,
    is_chargeback,
    cast(chargeback_at as timestamp) as chargeback_at,
    cast(transaction_at as timestamp) as transaction_at,
    cast(ingested_at as timestamp) as ingested_at
from {{ source('raw', 'transactions') }}
