"""Ways in from other feature stores: a Feast repository read and written as dbt files."""
