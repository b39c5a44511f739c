-- The fraud model's training set as a dbt model: every labelled transaction with its features as of
-- the transaction time (docs/semantics.md). `exposure=` takes the feature list from the fraud_model
-- exposure (models/exposures.yml), so this is the same set as `featurehouse training-set --model
-- fraud_model`, and a team that may not read a feature fails compilation (docs/security.md). The
-- views are listed for dbt's build order (refs are known before the exposure is).
{{ featurehouse.point_in_time_join(
    spine=ref('fraud_labels'),
    timestamp='label_time',
    exposure='fraud_model',
    features=[
        'user_txn_stats.txn_count_1h',
        'user_txn_stats.txn_count_24h',
        'user_txn_stats.txn_count_7d',
        'user_txn_stats.amount_sum_24h',
        'user_txn_stats.amount_sum_7d',
        'user_txn_stats.amount_max_7d',
        'card_txn_stats.txn_count_1h',
        'card_txn_stats.txn_count_24h',
        'card_txn_stats.online_txn_count_1h',
        'card_txn_stats.amount_sum_1h',
        'card_txn_stats.amount_max_24h',
        'card_txn_stats.seconds_since_previous_txn',
        'merchant_risk.chargeback_rate_30d',
        'merchant_risk.txn_count_24h',
        'merchant_risk.amount_avg_30d',
        'user_profile.country',
        'user_profile.is_premium'
    ]) }}
