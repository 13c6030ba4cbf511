"""`credit-risk predict` on the fixture's model (no retraining), and the CLI's error contract:
a CreditRiskError is a user error (exit 1, one line), anything else is a bug (a traceback)."""

import csv
import subprocess
import sys

import pytest

from credit_risk.cli import main
from credit_risk.cli.predict import RESULT_COLUMNS
from credit_risk.records.decisions import JsonlDecisionLog
from credit_risk.registry import Registry
from credit_risk.scoring.grades import MasterScale


@pytest.fixture
def env(trained, tmp_path, monkeypatch):
    settings, version = trained
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", str(settings.registry.url))
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    fields = Registry(settings.registry.url).manifest(version)["inputs"]
    return tmp_path, version, fields


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _typical(fields):
    return ["" if f["default"] is None else str(f["default"]) for f in fields]


def test_predict_keeps_the_input_and_appends_the_results(env, capsys):
    tmp, version, fields = env
    names = [f["name"] for f in fields]
    numeric = next(i for i, f in enumerate(fields) if f["type"] != "category")
    good = _typical(fields)
    written = [*good]
    written[numeric] = f"{float(good[numeric]):.2f}0"  # kept as written, e.g. "1.500"
    bad = [*good]
    bad[numeric] = "many"
    _write(tmp / "in.csv", ["ref", *names], [["a", *written], ["b", *bad], ["c", *good]])
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv"), "--log"]) == 3
    assert f"scored 2 of 3 rows with {version}" in capsys.readouterr().err

    with (tmp / "out.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["ref", *names, *RESULT_COLUMNS]
    assert [r["ref"] for r in rows] == ["a", "b", "c"]
    assert rows[0][names[numeric]] == written[numeric]
    assert rows[0]["error"] == "" and rows[0]["model_version"] == version
    assert rows[0]["probability_of_default"] == rows[2]["probability_of_default"] != ""
    assert rows[0]["rating"] and rows[0]["risk"] in ("High", "Low") and rows[0]["reasons"]
    assert rows[0]["grade"] == MasterScale.default().grade(
        float(rows[0]["probability_of_default"]))
    assert "{" not in rows[0]["reasons"]  # readable text, not a Python list
    assert rows[1]["error"] == f"{names[numeric]} must be a number"
    assert all(rows[1][c] == "" for c in RESULT_COLUMNS if c != "error")
    logged = JsonlDecisionLog(tmp / "decisions.jsonl").read()
    assert len(logged) == 2 and logged[0]["request_id"] == logged[1]["request_id"]
    assert logged[0]["inputs"][names[numeric]] == float(written[numeric])
    assert isinstance(logged[0]["reasons"], list)  # logged whole, not the readable text


def test_predict_to_stdout(env, capsys):
    tmp, version, fields = env
    _write(tmp / "in.csv", [f["name"] for f in fields], [_typical(fields)])
    assert main(["predict", str(tmp / "in.csv")]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 1 and rows[0]["model_version"] == version


@pytest.mark.parametrize(("case", "message"), [
    ("missing_file", "cannot read"),
    ("missing_column", "columns missing from the input"),
    ("result_column", "the input has result columns already: risk"),
    ("doubled_column", "columns named twice"),
    ("long_row", "values for"),
])
def test_predict_input_errors_are_user_errors(env, capsys, case, message):
    tmp, _, fields = env
    names, typical = [f["name"] for f in fields], _typical(fields)
    path = tmp / "in.csv"
    if case == "missing_column":
        _write(path, names[1:], [typical[1:]])
    elif case == "result_column":
        _write(path, [*names, "risk"], [[*typical, "Low"]])
    elif case == "doubled_column":
        _write(path, [*names, names[0]], [[*typical, typical[0]]])
    elif case == "long_row":
        _write(path, names, [[*typical, "extra"]])
    assert main(["predict", str(path), "-o", str(tmp / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("credit-risk: error:") and message in err
    assert "Traceback" not in err and not (tmp / "out.csv").exists()
    assert not (tmp / "decisions.jsonl").exists()


def test_no_champion_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", str(tmp_path / "empty"))
    assert main(["predict", str(tmp_path / "in.csv")]) == 1
    assert "no champion model" in capsys.readouterr().err


def test_a_bug_shows_its_traceback(env, monkeypatch):
    from credit_risk.cli import registry

    def broken(args, settings):
        return {}["missing"]

    monkeypatch.setattr(registry, "cmd_models", broken)
    with pytest.raises(KeyError):  # not "credit-risk: error: 'missing'" and exit 1
        main(["models", "list"])


def test_invalid_settings_are_a_user_error(monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_RISK_N_CUSTOMERS", "many")
    assert main(["models", "list"]) == 1
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "CREDIT_RISK_N_CUSTOMERS" in err


def test_an_unknown_model_is_a_user_error_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_RISK_DATA_DIR", str(tmp_path / "no-data"))
    assert main(["train", "--models", "xgboost,gpt"]) == 2  # a usage error
    assert "unknown model 'gpt' (choose from" in capsys.readouterr().err


def test_serving_commands_load_no_training_stack(env):
    """The lazy dispatch: predict and models load neither the pipeline nor its tools. (Not
    pandas or scikit-learn here: xgboost imports them when they are installed; the
    serving-slice test runs these commands where they are not.)"""
    tmp, _, fields = env
    _write(tmp / "in.csv", [f["name"] for f in fields], [_typical(fields)])
    script = (
        "import sys\n"
        "from credit_risk.cli import main\n"
        f"assert main(['predict', {str(tmp / 'in.csv')!r}, '-o', {str(tmp / 'o.csv')!r}]) == 0\n"
        "assert main(['models', 'list']) == 0\n"
        "heavy = ('credit_risk.pipeline', 'credit_risk.validation', 'credit_risk_ui',\n"
        "         'imblearn', 'airflow', 'great_expectations', 'evidently', 'matplotlib',\n"
        "         'markdown_it')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_odd_text_is_a_bad_row_reported_by_number_never_a_crash(env, capsys):
    """A byte that is not UTF-8, NUL, a bidi mark, an over-long value, other scripts' digits,
    an application id in another normal form: each row gets its error and is listed on stderr
    by number; the good rows are scored; the input's bytes come back unchanged."""
    tmp, version, fields = env
    names = [f["name"] for f in fields]
    category = next(i for i, f in enumerate(fields) if f["type"] == "category")
    numeric = next(i for i, f in enumerate(fields) if f["type"] != "category")
    good = _typical(fields)

    def row(ref, index=None, value=None, loan_id="L1"):
        cells = [*good]
        if index is not None:
            cells[index] = value
        return [ref, loan_id, *cells]

    rows = [row("good"), row("bidi", category, "\u202e" + good[category]),
            row("nul", category, good[category] + "\x00"), row("long", category, "x" * 5000),
            row("digits", numeric, "\u0663"), row("good2"), row("id", loan_id="Cafe\u0301"),
            row("id-bidi", loan_id="L\u2067")]
    lines = [",".join(["ref", "loan_id", *names])] + [
        ",".join(f'"{c}"' for c in r) for r in rows]
    data = "\n".join(lines).encode() + b'\n"bytes\xff",L9,' + ",".join(good).encode() + b"\n"
    data += b"good3,L10," + ",".join(good).encode().replace(good[category].encode(), b"\xff", 1)
    data += b"\n"
    (tmp / "in.csv").write_bytes(data)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv"), "--log"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err

    with (tmp / "out.csv").open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
        out = list(csv.DictReader(fh))
    errors = {r["ref"]: r["error"] for r in out}
    assert errors["good"] == errors["good2"] == errors["bytes\udcff"] == ""
    assert out[0]["probability_of_default"] and out[5]["probability_of_default"]
    c, n = names[category], names[numeric]
    assert errors["bidi"] == f"{c} must not contain bidirectional control marks (U+202E)"
    assert errors["nul"] == f"{c} must not contain control characters"
    assert errors["long"] == f"{c} must be at most 200 characters"
    assert errors["digits"] == f"{n} must be a number"
    assert errors["id"] == "loan_id must be in Unicode normal form NFC (composed characters)"
    assert errors["id-bidi"] == "loan_id must not contain bidirectional control marks (U+2067)"
    assert errors["good3"].startswith(f"{c} must be valid UTF-8 text (U+DCFF")
    for number, ref in enumerate([r["ref"] for r in out], start=1):
        assert (f"row {number}: " in err) == bool(errors[ref]), (number, ref, err)
    assert (tmp / "out.csv").read_bytes().splitlines()[9].startswith(b'"bytes\xff","L9",')
    logged = JsonlDecisionLog(tmp / "decisions.jsonl").read()
    assert [d["inputs"]["application_id"] for d in logged] == ["L1", "L1", "L9"]


def test_odd_text_to_stdout_keeps_the_input_bytes(env, capfdbinary):
    tmp, _, fields = env
    good = ",".join(_typical(fields)).encode()
    (tmp / "in.csv").write_bytes(b"ref," + ",".join(f["name"] for f in fields).encode()
                                 + b"\n\xfe\xff," + good + b"\n")
    assert main(["predict", str(tmp / "in.csv")]) == 0
    out = capfdbinary.readouterr().out
    quoted = b",".join(b'"' + c + b'"' for c in good.split(b","))
    assert out.splitlines()[1].startswith(b'"\xfe\xff",' + quoted)


def test_a_row_with_too_few_values_is_an_input_error(env, capsys):
    tmp, _, fields = env
    (tmp / "in.csv").write_text(",".join(f["name"] for f in fields) + "\n"
                                + ",".join(_typical(fields)) + "\n" + "x" * 200_000 + "\n")
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "a row has 1 values for" in err and "Traceback" not in err
    assert not (tmp / "out.csv").exists()
