"""The repository's DAG folder loaded as Airflow 3 loads a DAG bundle: the dag-processor and
the task runner put the bundle folder on sys.path, so a DAG file may import its neighbours
(`task_errors`)."""

from pathlib import Path

DAGS = Path(__file__).parents[2] / "dags"


def dag_bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)


def get_dag(dag_id: str):
    return dag_bag().get_dag(dag_id)
