{{ config(meta={'featurehouse': {
    'entity': 'thing', 'event_time': 'event_time', 'created_at': 'created_at',
    'ttl': '5s', 'serving_delay': '1s', 'owner': 'tests', 'freshness_slo': '1h'}}) }}
select card_id, merchant, event_time, created_at, cnt, label_txt from {{ source('raw', 'stats') }}
