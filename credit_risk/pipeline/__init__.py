"""The training and monitoring side: ingest, features, training, evaluation, the gate,
fairness, the model card, publishing, monitoring.

`tasks` holds the DAGs' task bodies, `steps` the training steps they and the CLI call,
`run_paths` every run folder's layout, `validate` the data validation gate's run folder.
"""
