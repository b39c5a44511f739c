select
    cast(card_id as bigint) as card_id,
    cast(user_id as bigint) as user_id,
    cast(card_type as {{ dbt.type_string() }}) as card_type,
    cast(issued_at as timestamp) as issued_at,
    cast(created_at as timestamp) as created_at
from {{ source('raw', 'cards') }}
