-- The fraud model's training set as a dbt model: every labelled transaction with its features as of
-- the transaction time (docs/semantics.md). The same rows as `featurehouse training-set --model fraud_model`.
{{ featurehouse.point_in_time_join(
    spine=ref('fraud_labels'),
    timestamp='label_time',
    features=[
        'user_txn_stats.txn_count_1h',
        'user_txn_stats.txn_count_24h',
        'user_txn_stats.amount_sum_24h',
        'card_txn_stats.txn_count_1h',
        'card_txn_stats.seconds_since_previous_txn',
        'merchant_risk.chargeback_rate_30d',
        'user_profile.country',
        'user_profile.is_premium'
    ]) }}
