-- The recommender's training set: each impression with user, item and user-item features as of its time.
{{ featurehouse.point_in_time_join(
    spine=ref('click_labels'),
    timestamp='label_time',
    features=[
        'user_profile.country',
        'item_popularity.ctr_7d',
        'item_popularity.views_24h',
        'user_item_affinity.interaction_count_30d',
        'user_item_affinity.last_interaction_type'
    ]) }}
