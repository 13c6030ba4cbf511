"""Exit codes a scheduler can trust (0 done, 1 failed, 2 usage), -v/-q anywhere, tables for
people and JSON for machines."""

import json
import logging

import pytest

from credit_risk.cli import build_parser, main, verbosity


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key, value in {"DATA_DIR": tmp_path / "data", "RUNS_DIR": tmp_path / "runs",
                       "REGISTRY_URL": tmp_path / "reg",
                       "DECISION_LOG": tmp_path / "decisions.jsonl"}.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    return tmp_path


def _exit(argv):
    """The code main returns, or the one argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("argv", [
    [],  # no command
    ["fly"],  # no such command
    ["models"],  # no subcommand
    ["models", "show"],  # no version
    ["models", "promote", "v1"],  # no --reason
    ["generate-data", "--customers", "0"],
    ["generate-data", "--customers", "many"],
    ["drift", "--window-days", "-3"],
    ["decisions", "prune", "--days", "nan"],
    ["train", "--bogus"],
    ["models", "list", "-x"],
])
def test_a_malformed_command_line_exits_2(env, argv, capsys):
    assert _exit(argv) == 2
    assert "usage: credit-risk" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--models", "xgboost,gpt"], "unknown model 'gpt' (choose from"),
    (["generate-data", "--spec", "german_credit"], "has no generator"),
    (["outcomes", "load"], "give a CSV file or --sql"),
    (["outcomes", "load", "x.csv", "--sql", "SELECT 1"], "give a CSV file or --sql"),
    (["outcomes", "load", "--sql", "SELECT 1"], "--url-env VAR"),
    (["performance", "--as-of", "last tuesday"], "not an ISO date"),
])
def test_arguments_that_cannot_work_exit_2_before_any_work(env, argv, message, capsys):
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"credit-risk {argv[0]}: error: ") and message in err, err
    assert not (env / "runs").exists() and not (env / "data").exists()  # nothing done


@pytest.mark.parametrize(("argv", "message"), [
    (["models", "show", "nope"], "no model version 'nope'"),
    (["models", "verify", "nope"], "no model version"),
    (["models", "rollback", "--reason", "x"], "no previous champion to roll back to"),
    (["train", "--spec", "missing_spec"], "no dataset spec"),
    (["train", "--models", "xgboost"], "loans.csv"),  # no data generated: named, not made
    (["validate"], "source table not found"),
    (["decisions", "prune", "--days", "1"], "drift"),  # shorter than the drift window
])
def test_work_that_fails_exits_1_with_the_reason(env, argv, message, capsys):
    assert _exit(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_a_bad_setting_is_a_failure_not_a_usage_error(env, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_RISK_N_CUSTOMERS", "many")
    assert _exit(["models", "list"]) == 1
    assert "invalid configuration" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "level"), [
    (["models", "list"], 0),
    (["-v", "models", "list"], 1),
    (["models", "list", "-v"], 1),
    (["models", "-v", "list"], 1),
    (["-v", "models", "list", "-v"], 2),
    (["models", "list", "-vv"], 2),
    (["--verbose", "train", "--verbose"], 2),
    (["train", "--models", "xgboost", "-q"], -1),
    (["-q", "validate", "--spec", "german_credit"], -1),
    (["-v", "train", "-q"], 0),
])
def test_verbosity_is_counted_wherever_it_is_given(argv, level):
    assert verbosity(build_parser().parse_args(argv)) == level


def test_other_libraries_logs_are_quiet_unless_vv(env, capsys):
    libraries = ["great_expectations", "evidently", "alembic", "numexpr", "matplotlib"]
    assert main(["models", "list", "-v"]) == 0
    assert logging.getLogger().level == logging.INFO
    assert {logging.getLogger(n).getEffectiveLevel() for n in libraries} == {logging.ERROR}
    assert main(["-v", "models", "list", "-v"]) == 0
    assert logging.getLogger().level == logging.DEBUG
    assert {logging.getLogger(n).getEffectiveLevel() for n in libraries} == {logging.DEBUG}
    assert main(["models", "list", "-q"]) == 0
    assert logging.getLogger().level == logging.ERROR
    assert main(["models", "list"]) == 0
    assert logging.getLogger().level == logging.WARNING


def test_models_list_and_show_are_tables_and_json_on_request(two_versions, capsys):
    version, twin = two_versions
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dataset lauki_synthetic: champion {version}, previous -")
    header = out.splitlines()[1].split()
    assert header == ["version", "model", "ROC", "AUC", "status", "alias"]
    assert main(["models", "list", "--json"]) == 0
    [group] = json.loads(capsys.readouterr().out)
    assert group["dataset"] == "lauki_synthetic" and group["champion"] == version
    assert {v["version"] for v in group["versions"]} == {version, twin}

    assert main(["models", "show", version]) == 0
    shown = capsys.readouterr().out
    assert not shown.lstrip().startswith("{")
    lines = shown.splitlines()
    assert lines[0].split() == ["Version", version]
    assert any(line.split()[:2] == ["Status", "approved"] and "(champion)" in line
               for line in lines)
    assert "ROC AUC" in shown and "Candidates, on the same test set" in shown
    # inputs with the spec's labels and units
    credit = next(line for line in lines if line.startswith("credit_utilization_ratio"))
    assert "Credit utilisation" in credit and "0 to 100" in credit and "%" in credit
    assert main(["models", "show", version, "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["version"] == version and "spec" not in manifest


@pytest.fixture
def two_versions(env, trained_copy, monkeypatch):
    from credit_risk.registry import Registry
    from tests.conftest import republish

    settings, version = trained_copy
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", settings.registry.url)
    return version, republish(Registry(settings.registry.url), version)


def test_predict_without_pyarrow_names_the_batch_extra(env, monkeypatch, tmp_path, capsys):
    """An install of the serving extra alone (the serving image) has no pyarrow: predict says
    which extra it needs instead of a traceback."""
    import sys

    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith(("pyarrow.",
                 "credit_risk.cli.predict"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow: ModuleNotFoundError
    (tmp_path / "apps.csv").write_text("a\n1\n")
    assert main(["predict", str(tmp_path / "apps.csv")]) == 1
    assert "predict needs the batch extra" in capsys.readouterr().err
