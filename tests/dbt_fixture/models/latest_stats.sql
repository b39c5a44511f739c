{{ featurehouse.latest_values('stats') }}
