select
    cast(item_id as bigint) as item_id,
    cast(category as {{ dbt.type_string() }}) as category,
    cast(price as {{ featurehouse.double_type() }}) as price,
    cast(listed_at as timestamp) as listed_at,
    cast(created_at as timestamp) as created_at
from {{ source('raw', 'items') }}
