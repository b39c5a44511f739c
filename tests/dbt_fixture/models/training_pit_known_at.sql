{{ featurehouse.point_in_time_join(spine=ref('spine'), timestamp='as_of',
                                   features=['stats.cnt', 'stats.label_txt@1'], as_known_at=true) }}
