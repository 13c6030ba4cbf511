"""`credit-risk predict` as a batch job: exit codes and the errors file, the decision log only
when asked, chunked reading and writing (CSV and Parquet), and the spec's cleaning rules
applied as in training (the `Personaal` typo scores as `Personal` in predict, the API and the
form)."""

import csv
import hashlib
import json
import re

import pyarrow.parquet as pq
import pytest

from credit_risk.cli import main
from credit_risk.cli.predict import EXIT_NONE, EXIT_PARTIAL
from credit_risk.pipeline.ingest import assemble
from credit_risk.records.decisions import JsonlDecisionLog
from serving import create_app


@pytest.fixture
def env(trained, tmp_path, monkeypatch):
    settings, version = trained
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", str(settings.registry.url))
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    monkeypatch.delenv("CREDIT_RISK_PREDICT_LOG", raising=False)
    return tmp_path, settings, version


@pytest.fixture
def applications(spec, tables):
    """The generated applications (no target), a few loans written with the typo `Personaal`."""
    apps = assemble(spec, tables).drop(columns=[spec.target.column]).head(400).copy()
    personal = apps.index[apps["loan_purpose"] == "Personal"][:6]
    apps.loc[personal, "loan_purpose"] = "Personaal"
    return apps


def _rows(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_row_scored_exits_0_and_writes_no_errors_file(env, applications):
    tmp, _, _ = env
    applications.to_csv(tmp / "in.csv", index=False)
    (tmp / "out.csv.errors.csv").write_text("row,error\n1,a former run's\n")
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == 0
    rows = _rows(tmp / "out.csv")
    assert len(rows) == len(applications) and all(r["probability_of_default"] for r in rows)
    assert not (tmp / "out.csv.errors.csv").exists()


def test_no_row_scored_exits_4_with_every_row_in_the_errors_file(env, applications, capsys):
    tmp, _, _ = env
    bad = applications.head(25).copy()
    bad["age"] = "old"
    bad.to_csv(tmp / "in.csv", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == EXIT_NONE
    errors = _rows(tmp / "out.csv.errors.csv")
    assert [e["row"] for e in errors] == [str(i) for i in range(1, 26)]
    assert {e["error"] for e in errors} == {"age must be a number"}
    assert "and 5 more rows not scored" in capsys.readouterr().err
    assert len(_rows(tmp / "out.csv")) == 25


def test_some_rows_not_scored_exit_3_naming_their_rows(env, applications):
    tmp, _, _ = env
    some = applications.head(10).copy()
    some["income"] = some["income"].astype(object)
    some.loc[some.index[[2, 7]], "income"] = "-"
    some.to_csv(tmp / "in.csv", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == EXIT_PARTIAL
    assert _rows(tmp / "out.csv.errors.csv") == [
        {"row": "3", "error": "income must be a number"},
        {"row": "8", "error": "income must be a number"}]


@pytest.mark.parametrize("argv", [["predict"], ["predict", "in.csv", "--chunk-rows", "0"],
                                  ["predict", "in.csv", "--bogus"]])
def test_a_usage_error_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "usage:" in capsys.readouterr().err


def test_decisions_are_logged_only_when_asked(env, applications, monkeypatch):
    tmp, _, _ = env
    log = tmp / "decisions.jsonl"
    applications.head(5).to_csv(tmp / "in.csv", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == 0
    assert not log.exists()  # a what-if run leaves no trace
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv"), "--log"]) == 0
    assert len(log.read_text().splitlines()) == 1  # one batch record, its rows compressed
    assert len(JsonlDecisionLog(log).read()) == 5
    monkeypatch.setenv("CREDIT_RISK_PREDICT_LOG", "true")
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == 0
    decided = JsonlDecisionLog(log).read()
    assert len(decided) == 10 and len({d["request_id"] for d in decided}) == 2
    batch = json.loads(log.read_text().splitlines()[1])["batch"]
    assert batch["rows"] == 5 and batch["failed"] == 0 and batch["input_name"] == "in.csv"
    assert batch["input_sha256"] == hashlib.sha256((tmp / "in.csv").read_bytes()).hexdigest()


def test_when_the_batch_cannot_be_logged_no_output_is_written(env, applications):
    tmp, _, _ = env
    applications.head(5).to_csv(tmp / "in.csv", index=False)
    (tmp / "decisions.jsonl.batches").write_text("a file where the batches' folder goes")
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv"), "--log"]) == 1
    assert not (tmp / "out.csv").exists() and not (tmp / "decisions.jsonl").exists()
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".out.csv")] == []


def test_logged_or_not_the_output_is_the_same(env, applications):
    """Logged, rows are scored as decision records; not logged, by columns: the same answers."""
    tmp, _, _ = env
    applications.loc[applications.index[:3], "bank_balance_at_application"] = 1e10  # capped
    applications["income"] = applications["income"].astype(object)
    applications.loc[applications.index[3], "income"] = "lots"  # not scored
    applications.loc[applications.index[5:8], "residence_type"] = None  # imputed
    applications.to_csv(tmp / "in.csv", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "plain.csv")]) == EXIT_PARTIAL
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "logged.csv"),
                 "--log"]) == EXIT_PARTIAL
    assert (tmp / "plain.csv").read_bytes() == (tmp / "logged.csv").read_bytes()
    rows = _rows(tmp / "plain.csv")
    assert rows[0]["warnings"].startswith("bank_balance_at_application outside the training")
    assert rows[3]["error"] == "income must be a number" and rows[4]["error"] == ""
    assert rows[5]["warnings"].startswith("residence_type missing")


def test_chunks_change_nothing_in_the_output(env, applications):
    """Chunks of 7 rows (boundaries everywhere, a short last one) give the bytes of one chunk;
    Parquet in and out gives the same values; the row order is kept."""
    tmp, _, _ = env
    applications["ref"] = [f"r{i}" for i in range(len(applications))]
    applications.to_csv(tmp / "in.csv", index=False)
    applications.to_parquet(tmp / "in.parquet", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "whole.csv")]) == 0
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "chunked.csv"),
                 "--chunk-rows", "7"]) == 0
    assert (tmp / "whole.csv").read_bytes() == (tmp / "chunked.csv").read_bytes()
    assert main(["predict", str(tmp / "in.parquet"), "-o", str(tmp / "out.parquet"),
                 "--chunk-rows", "7"]) == 0
    whole = _rows(tmp / "whole.csv")
    table = pq.read_table(tmp / "out.parquet").to_pylist()
    assert [r["ref"] for r in table] == [r["ref"] for r in whole] == list(applications["ref"])
    assert [r["probability_of_default"] for r in table] == [
        float(r["probability_of_default"]) for r in whole]
    assert [r["reasons"] for r in table] == [r["reasons"] for r in whole]


def test_an_empty_input_writes_the_header_and_exits_0(env, applications):
    tmp, _, _ = env
    applications.head(0).to_csv(tmp / "in.csv", index=False)
    assert main(["predict", str(tmp / "in.csv"), "-o", str(tmp / "out.csv")]) == 0
    header = (tmp / "out.csv").read_text().splitlines()
    assert len(header) == 1 and "probability_of_default" in header[0]


def test_the_typo_scores_as_training_cleaned_it_in_predict_the_api_and_the_form(
        env, applications):
    tmp, settings, _ = env
    typo = applications[applications["loan_purpose"] == "Personaal"]
    fixed = typo.assign(loan_purpose="Personal")
    assert len(typo) == 6
    typo.to_csv(tmp / "typo.csv", index=False)
    fixed.to_csv(tmp / "fixed.csv", index=False)
    assert main(["predict", str(tmp / "typo.csv"), "-o", str(tmp / "typo-out.csv")]) == 0
    assert main(["predict", str(tmp / "fixed.csv"), "-o", str(tmp / "fixed-out.csv")]) == 0
    cli = [r["probability_of_default"] for r in _rows(tmp / "typo-out.csv")]
    assert cli == [r["probability_of_default"] for r in _rows(tmp / "fixed-out.csv")]

    client = create_app(settings, watch=False).test_client()
    names = [f["name"] for f in client.get("/api/v1/model").json["inputs"]]
    for i, (_, row) in enumerate(typo.iterrows()):
        app = {n: (None if row[n] != row[n] else row[n]) for n in names}
        app = {k: v.item() if hasattr(v, "item") else v for k, v in app.items()}
        sent = client.post("/api/v1/predict", json=app)
        right = client.post("/api/v1/predict", json={**app, "loan_purpose": "Personal"})
        assert sent.status_code == right.status_code == 200, sent.json
        assert sent.json["probability_of_default"] == right.json["probability_of_default"]
        assert abs(sent.json["probability_of_default"] - float(cli[i])) < 1e-12
        batch = client.post("/api/v1/predict/batch", json={"applications": [app, app]})
        assert [r["probability_of_default"] for r in batch.json["results"]] == [
            sent.json["probability_of_default"]] * 2
        form = {k: "" if v is None else str(v) for k, v in app.items()}
        page = client.post("/", data={**form, "csrf_token": csrf(client)})
        page_right = client.post("/", data={**form, "loan_purpose": "Personal",
                                            "csrf_token": csrf(client)})
        assert page.status_code == 200 and "must be one of" not in page.get_data(as_text=True)
        assert _score(page) == _score(page_right) == str(right.json["credit_score"])


def _score(page):
    match = re.search(r'<dd id="score">(\d+)</dd>', page.get_data(as_text=True))
    assert match, page.get_data(as_text=True)[:2000]
    return match[1]


def csrf(client):
    """The form's CSRF token (its session cookie stays in the client)."""
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
