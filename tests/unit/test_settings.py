"""The settings: environment names read into their groups, flat names, validation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from credit_risk.config import FLAT, GROUPS, ServingSettings, Settings, env


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No CREDIT_RISK_* variable of the shell leaks into these tests."""
    import os

    for name in [n for n in os.environ if n.startswith("CREDIT_RISK_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("variable, value, read", [
    ("CREDIT_RISK_REGISTRY_URL", "s3://bucket/reg", lambda c: c.registry.url == "s3://bucket/reg"),
    ("CREDIT_RISK_CV_FOLDS", "5", lambda c: c.training.cv_folds == 5),
    ("CREDIT_RISK_DATA_SEED", "7", lambda c: c.data.seed == 7 and c.training.seed == 42),
    ("CREDIT_RISK_RUNS_DIR", "s3://bucket/runs/", lambda c: c.data.runs_dir == "s3://bucket/runs"),
    ("CREDIT_RISK_DECISION_LOG", "postgres://u@db/credit",
     lambda c: c.decisions.url == "postgresql+psycopg://u@db/credit"),
    ("CREDIT_RISK_DECISION_LOG", "none", lambda c: c.decisions.url is None),
    ("CREDIT_RISK_TRUSTED_KEYS", "a.pem, b.pem",
     lambda c: c.signing.trusted_keys == (Path("a.pem"), Path("b.pem"))),
    ("CREDIT_RISK_API_KEYS", "k1,k2",
     lambda c: c.serving.api_keys == ("k1", "k2") and c.serving.form_auth == "api_key"),
    ("CREDIT_RISK_WORKERS", "4", lambda c: c.serving.workers == 4),
    ("CREDIT_RISK_DRIFT_WINDOW_DAYS", "3", lambda c: c.monitoring.drift_window_days == 3),
    ("CREDIT_RISK_MIN_ROC_AUC", "0.8", lambda c: c.gate.min_roc_auc == 0.8),
    ("CREDIT_RISK_SCORE_PDO", "20", lambda c: c.score.pdo == 20),
    ("CREDIT_RISK_VALIDATION_SEVERITY", '{"nulls": "warning"}',
     lambda c: c.validation.severity == {"nulls": "warning"}),
    ("CREDIT_RISK_VALIDATION_SEVERITY__RANGE", "warning",
     lambda c: c.validation.severity == {"range": "warning"}),
])
def test_environment_variables_are_read_into_their_group(monkeypatch, variable, value, read):
    monkeypatch.setenv(variable, value)
    assert read(Settings())


@pytest.mark.parametrize("variable", ["CREDIT_RISK_DATASET", "CREDIT_RISK_SIGNING_KEY_FILE"])
def test_a_blank_dataset_or_signing_key_is_unset(monkeypatch, variable):
    monkeypatch.setenv(variable, "  ")
    settings = Settings()
    assert settings.registry.dataset is None and settings.signing.key_file is None


def test_every_flat_name_is_its_variable_without_the_prefix():
    for flat, (group, name) in FLAT.items():
        field = GROUPS[group].model_fields[name]
        assert field.alias == env(flat) == "CREDIT_RISK_" + flat.upper()
    assert len(FLAT) == sum(len(g.model_fields) for g in GROUPS.values())


def test_the_constructor_takes_flat_names(tmp_path):
    settings = Settings(registry_url=str(tmp_path / "reg"), cv_folds=4, decision_log=None,
                        bind="127.0.0.1:9000")
    assert settings.registry.url == str(tmp_path / "reg")
    assert (settings.training.cv_folds, settings.decisions.url) == (4, None)
    assert settings.serving.bind == "127.0.0.1:9000"
    assert settings.flat()["cv_folds"] == 4


def test_the_constructor_takes_a_group_and_flat_names_over_it():
    settings = Settings(serving=ServingSettings(threads=4), max_batch_rows=10)
    assert (settings.serving.threads, settings.serving.max_batch_rows) == (4, 10)


def test_flat_names_override_the_environment(monkeypatch):
    monkeypatch.setenv("CREDIT_RISK_CV_FOLDS", "5")
    monkeypatch.setenv("CREDIT_RISK_SEARCH_ITERATIONS", "9")
    settings = Settings(cv_folds=2)
    assert (settings.training.cv_folds, settings.training.search_iterations) == (2, 9)


def test_replace_and_model_copy_change_settings_by_flat_name():
    settings = Settings()
    changed = settings.replace(cv_folds=6, drift_window_days=2)
    assert (changed.training.cv_folds, changed.monitoring.drift_window_days) == (6, 2)
    assert settings.training.cv_folds == 3  # the original is untouched
    copied = settings.model_copy(update={"models": ("xgboost",)})
    assert copied.training.models == ("xgboost",) and copied.data == settings.data
    assert settings.model_copy() == settings


@pytest.mark.parametrize("change", [{"cv_folds": 1}, {"calibration": "platt"},
                                    {"decision_log": "mysql://db/x"}, {"threads": 0}])
def test_replace_and_model_copy_validate(change):
    variable = env(next(iter(change)))  # the error names the variable
    with pytest.raises(ValidationError, match=variable):
        Settings().replace(**change)
    with pytest.raises(ValidationError, match=variable):
        Settings().model_copy(update=change)


def test_unknown_names_are_refused():
    with pytest.raises(ValidationError, match="unknown setting.*registry_ur"):
        Settings(registry_ur="var/registry")
    with pytest.raises(ValidationError, match="unknown setting.*url"):
        Settings().replace(url="var/registry")  # a group's field name is not a flat name
    with pytest.raises(ValidationError):
        ServingSettings(nope=1)


def test_retention_shorter_than_the_drift_window_is_refused():
    with pytest.raises(ValidationError, match="shorter than drift_window_days"):
        Settings(decision_retention_days=3, drift_window_days=7)
    settings = Settings(decision_retention_days=30)
    with pytest.raises(ValidationError, match="shorter than drift_window_days"):
        settings.replace(drift_window_days=60)


def test_outcomes_sql_needs_the_name_of_its_url_variable():
    with pytest.raises(ValidationError, match="outcomes_sql_url_env"):
        Settings(outcomes_sql="select 1")


def test_local_runs_dir_refuses_an_object_store_url():
    assert Settings(runs_dir="var/r").local_runs_dir == Path("var/r")
    with pytest.raises(ValueError, match="object store URL"):
        _ = Settings(runs_dir="s3://bucket/runs").local_runs_dir

