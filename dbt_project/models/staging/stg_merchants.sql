select
    cast(merchant_id as bigint) as merchant_id,
    cast(category as {{ dbt.type_string() }}) as category,
    cast(country as {{ dbt.type_string() }}) as country,
    cast(onboarded_at as timestamp) as onboarded_at,
    cast(created_at as timestamp) as created_at
from {{ source('raw', 'merchants') }}
