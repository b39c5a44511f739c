{#-
  The user's profile as it changed: one row at signup and one when a user upgraded to premium later.
  No age-like features here: they would depend on "now" and go stale in the table.
-#}
with users as (
    select * from {{ ref('stg_users') }}
)

select
    user_id,
    signup_at as event_time,
    created_at,
    country,
    signup_channel,
    email_domain,
    coalesce(premium_since <= signup_at, false) as is_premium
from users

union all

select
    user_id,
    premium_since as event_time,
    updated_at as created_at,
    country,
    signup_channel,
    email_domain,
    true as is_premium
from users
where premium_since > signup_at
