{{ config(meta={'featurehouse': {'entity': 'thing', 'event_time': 'ts', 'ttl': '3s', 'sensitivity': 'pii'}}) }}
select card_id, merchant, ts, score from {{ source('raw', 'profile') }}
