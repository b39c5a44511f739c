select * from {{ source('raw', 'spine') }}
