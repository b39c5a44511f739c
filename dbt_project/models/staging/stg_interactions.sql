select
    cast(interaction_id as bigint) as interaction_id,
    cast(session_id as bigint) as session_id,
    cast(user_id as bigint) as user_id,
    cast(item_id as bigint) as item_id,
    cast(interaction_type as {{ dbt.type_string() }}) as interaction_type,
    cast(interaction_at as timestamp) as interaction_at,
    cast(ingested_at as timestamp) as ingested_at
from {{ source('raw', 'interactions') }}
