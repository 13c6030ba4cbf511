"""The validation report of a model version, computed at publish on the untouched test set.

`model`: the typed report (pydantic only; the CLI and the Airflow pages read it).
`calibration`: grades, the binomial and Jeffreys tests per grade, the traffic lights.
`importance`: global feature importance. `build`: the whole report and its files.
`card`: its section of the model card. `plot`: its figure.
"""
