"""Test tiers: every test gets exactly one of `unit`, `integration`, `slow` (pytest -m <tier>).

unit: in-process only, no server, database, subprocess or network (`make test-fast`).
integration: PostgreSQL, S3 on moto, Airflow (its database, api-server, CLI), a browser,
Docker and other external tools, gunicorn and other subprocesses.
slow: whole DAG runs end to end, the compose stack, long load tests.

The tier comes from, first match wins: a tier marker on the test (the slowest when it has
more, so select with `-m "integration and not slow"`); PATHS (longest match);
the fixtures it uses (FIXTURES, PARAMS); else unit. A unit test that starts a subprocess,
opens a network connection or connects to PostgreSQL fails with the reason (UnitGuard).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import pytest

TIERS = ("unit", "integration", "slow")

# A folder, a file or a file::test and its tier: for what the fixture rules below cannot see
# (a test that runs a subprocess in its body) or see wrong. The longest match wins.
PATHS = {
    "tests/e2e/": "slow",  # the DAGs run end to end by Airflow
    "tests/model/test_byod_scale.py": "slow",  # trains on 200,000 rows
    "tests/registry/test_crash_safety.py": "slow",  # up to 120 writers killed, over a minute
    "tests/deploy/": "integration",  # actionlint, shellcheck, cfn-lint, Docker, deploy.sh
    "tests/ui/test_airflow_server.py": "integration",  # an Airflow api-server subprocess
    "tests/data/test_sql_ingest.py": "integration",  # PostgreSQL
    "tests/serving/test_chunked_form_posts.py": "integration",  # a werkzeug server
    # a subprocess: another Python, a linter, the Airflow CLI, schemathesis
    "tests/cli/test_predict.py::test_serving_commands_load_no_training_stack": "integration",
    "tests/dags/test_dag_integrity.py::test_dag_files_import_without_heavy_libraries":
        "integration",
    "tests/dags/test_dag_integrity.py::test_ruff_airflow_rules_pass": "integration",
    "tests/dags/test_task_bodies.py::test_the_module_loads_no_training_or_monitoring_library":
        "integration",
    "tests/serving/test_api.py::test_logging_is_the_entry_points_not_the_app_factorys":
        "integration",
    "tests/serving/test_decision_log.py::test_a_failure_after_some_bytes_is_cut_back":
        "integration",
    "tests/serving/test_dockerfile.py::test_the_app_and_credit_risk_predict_need_nothing_outside":
        "integration",
    "tests/registry/test_bounded_reads.py::test_a_special_file_is_refused_quickly": "integration",
    "tests/records/test_decisions_pg.py::test_the_default_file_log_imports_no_database_code":
        "integration",
    "tests/serving/test_dockerfile.py::test_hadolint_passes": "integration",
    "tests/serving/test_fuzz.py::test_every_schemathesis_check_passes_over_http": "integration",
    "tests/serving/test_plan.py::test_serving_and_predict_never_unpickle": "integration",
    "tests/serving/test_plan.py::test_an_unsigned_booster_that_crashes_xgboost": "integration",
    "tests/test_compose.py::test_compose_files_follow_the_compose_specification": "integration",
    "tests/ui/test_airflow_pages.py::test_airflow_loads_the_plugin": "integration",
    # in-process but heavy (a training run of its own, a whole Great Expectations run with its
    # data docs, Evidently's reports, fuzzing): kept out of the unit tier's 2 minutes
    "tests/cli/test_cli.py::test_generate_train_list_show_predict": "integration",
    "tests/data/test_validation.py::test_each_fault_is_a_blocking_failure": "integration",
    "tests/data/test_validation.py::test_a_bad_batch_stops_the_run_at_the_gate": "integration",
    "tests/data/test_validation.py::test_good_batch_passes": "integration",
    "tests/data/test_validation.py::test_warning_is_recorded_but_does_not_stop": "integration",
    "tests/data/test_validation.py::test_more_blocking_checks_in_one_batch": "integration",
    "tests/data/test_validation.py::test_great_expectations_leaves_the_callers_frames_alone":
        "integration",
    "tests/ui/test_airflow_pages.py::test_drift_reports_are_listed_and_served": "integration",
    "tests/model/test_byod.py": "integration",
    "tests/model/test_trial_tasks.py": "integration",
    "tests/model/test_scorecard_publish.py": "integration",  # a whole training run
    "tests/model/test_gate.py::test_a_first_model_of_another_dataset": "integration",
    "tests/model/test_monitoring.py::test_evidently_gets_the_sample": "integration",
    "tests/model/test_monitoring.py::test_shifted_traffic_is_detected": "integration",
    "tests/model/test_monitoring.py::test_traffic_like_training_data_is_not_drift": "integration",
    "tests/model/test_monitoring.py::test_drift_command": "integration",
    "tests/model/test_train_scale.py::test_forest_trees_draw_at_most_the_cap_of_rows":
        "integration",
    "tests/serving/test_fuzz.py::test_no_server_errors_on_generated_requests": "integration",
}

# Fixtures that bring a server, a database or a subprocess: a test using one (directly or
# through another fixture) is integration.
FIXTURES = {
    "s3_server": "S3 on moto",
    "pg_server": "PostgreSQL",
    "start_gunicorn": "gunicorn subprocesses",
    "browser": "Chromium through Playwright",
    "airflow_db": "the Airflow metadata database (airflow db migrate)",
    "slice_env": "a virtualenv with the serving extra (pip install)",
    "small_disk": "a tmpfs mounted for the test",
}

# (fixture, parameter): the parametrized fixture's case that needs a server.
PARAMS = {("store", "s3"), ("store_env", "postgres")}


def tier_of(item: pytest.Item) -> str:
    """The one tier of a test; marked with more than one, the slowest of them."""
    marked = {m.name for m in item.iter_markers() if m.name in TIERS}
    if marked:
        return max(marked, key=TIERS.index)
    nodeid = item.nodeid
    matches = [p for p in PATHS if nodeid.startswith(p)]
    if matches:
        return PATHS[max(matches, key=len)]
    if any(name in FIXTURES for name in item.fixturenames):
        return "integration"
    params = getattr(item, "callspec", None)
    if params is not None and any(params.params.get(f) == v for f, v in PARAMS):
        return "integration"
    return "unit"


def assign(items: list[pytest.Item]) -> None:
    """Add each test's tier marker (collection)."""
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(tier)


class UnitGuard:
    """Records what a unit test must not do: a subprocess, a network connection, PostgreSQL."""

    EVENTS = {"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.fork",
              "os.forkpty"}
    # Quick lookups, not servers: the code version a published model records (git), and
    # platform.architecture() (file), which Airflow calls.
    ALLOWED = {"git", "file"}

    def __init__(self) -> None:
        self.used: list[str] | None = None  # a list while a unit test runs

    def install(self) -> None:
        """The audit hook (for the process's lifetime) and the wrapper around psycopg's connect."""
        sys.addaudithook(self._audit)
        try:
            import psycopg
        except ImportError:
            return
        connect = psycopg.Connection.connect.__func__

        def guarded(cls, *args, **kwargs):
            self._record("a PostgreSQL connection")
            return connect(cls, *args, **kwargs)

        psycopg.Connection.connect = classmethod(guarded)
        psycopg.connect = psycopg.Connection.connect

    def _audit(self, event: str, args: tuple) -> None:
        if self.used is None:
            return
        if event == "subprocess.Popen" and os.path.basename(str(args[0])) in self.ALLOWED:
            return
        if event in self.EVENTS:
            self._record(f"{event} {str(args[:2])[:200]}")
        elif event == "socket.connect" and isinstance(args[1], tuple):
            self._record(f"a network connection to {args[1][:2]}")

    def _record(self, what: str) -> None:
        if self.used is not None:
            self.used.append(what)

    @contextmanager
    def watching(self, item: pytest.Item):
        """Fails a unit test (its setup or call) that used a server or a subprocess."""
        if item.get_closest_marker("unit") is None:
            yield
            return
        self.used = []
        try:
            yield
        finally:
            used, self.used = self.used, None
            if used:
                raise pytest.fail.Exception(
                    f"{item.nodeid} is in the unit tier but used {'; '.join(used[:3])}: give it "
                    "the integration tier (a server fixture, or PATHS in tests/tiers.py)",
                    pytrace=False)
