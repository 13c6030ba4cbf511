"""The training side: ingest, features, training, evaluation, the gate, publishing, monitoring.

`steps` holds the functions the DAGs and the CLI call."""
