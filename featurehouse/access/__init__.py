"""Who may read which features: the access policy (teams, sensitivity, grants), principals and tokens.

The policy is written once in the dbt project (`vars.featurehouse.teams`, each view's `owner`,
`sensitivity` and `shared_with`, each exposure's `team`) and one decision function (`policy.decide`)
answers for every path: HTTP, the SDK, training sets, batch features and `featurehouse check`.
"""
