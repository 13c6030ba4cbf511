"""The distributed-training simulation: its DAG bundle and the trial task bodies."""
