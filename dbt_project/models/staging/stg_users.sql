select
    cast(user_id as bigint) as user_id,
    cast(country as {{ dbt.type_string() }}) as country,
    cast(signup_channel as {{ dbt.type_string() }}) as signup_channel,
    cast(email_domain as {{ dbt.type_string() }}) as email_domain,
    is_premium,
    cast(signup_at as timestamp) as signup_at,
    cast(premium_since as timestamp) as premium_since,
    cast(created_at as timestamp) as created_at,
    cast(updated_at as timestamp) as updated_at
from {{ source('raw', 'users') }}
