"""Observed outcomes beside the decisions: `credit-risk outcomes load` from a CSV file and from a
SQL query, idempotent loads, windowed reads, clear errors; on the JSONL file and on the local
PostgreSQL server (an own schema per test; the tests FAIL when the server is down). The API's
and the form's optional application_id recorded with the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from credit_risk.cli import main
from credit_risk.config import Settings
from credit_risk.records.backends import decision_log_at, open_outcomes, outcomes_target
from credit_risk.records.outcomes import JsonlOutcomes, OutcomesError, read_csv
from credit_risk.records.outcomes_pg import PostgresOutcomes
from tests.records.pg import CONNINFO, sql, url_for

CSV = ("application_id,defaulted,observed_at,branch\n"
       "L1,yes,2024-01-31,north\n"
       "L2,0,2024-02-01T10:00:00+02:00,south\n"
       "L3,False,2024-03-01,south\n")


@pytest.fixture(params=["jsonl", "postgres"])
def store_env(request, tmp_path, monkeypatch):
    """CREDIT_RISK_OUTCOMES for either backend (PostgreSQL: migrated, in an own schema)."""
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    if request.param == "jsonl":
        monkeypatch.delenv("CREDIT_RISK_OUTCOMES", raising=False)
        return None
    name = request.getfixturevalue("schema")
    monkeypatch.setenv("CREDIT_RISK_OUTCOMES", url_for(name))
    assert main(["outcomes", "migrate"]) == 0
    return name


def _load(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["outcomes", "load", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_load_csv_twice_stores_each_observation_once(store_env, tmp_path, capsys):
    path = tmp_path / "outcomes.csv"
    path.write_text(CSV)
    assert _load(capsys, str(path)) | {"outcomes": None} == {
        "source": str(path), "outcomes": None, "read": 3, "new": 3, "already_stored": 0}
    assert _load(capsys, str(path))["new"] == 0  # the same file again: nothing new
    more = tmp_path / "more.csv"  # one known observation, a later one of L1, a new loan
    more.write_text("application_id,defaulted,observed_at\nL2,no,2024-02-01T08:00:00Z\n"
                    "L1,yes,2024-04-30\nL4,1,2024-05-01\nL4,1,2024-05-01\n")
    assert _load(capsys, str(more))["new"] == 2
    with open_outcomes(Settings()) as store:
        assert store.count() == 5
        rows = store.read()
        assert [(r["application_id"], r["defaulted"]) for r in rows] == [
            ("L1", True), ("L2", False), ("L3", False), ("L1", True), ("L4", True)]
        assert rows[1]["observed_at"] == "2024-02-01T08:00:00+00:00"  # offsets to UTC
        # windowed and chunked: observed in [Feb, May), two a chunk
        window = list(store.iter_chunks(datetime(2024, 2, 1, tzinfo=UTC),
                                        datetime(2024, 5, 1), chunk_rows=2))
        assert [[r["application_id"] for r in c] for c in window] == [["L2", "L3"], ["L1"]]
    if store_env is not None:  # the table, its key and index, in the test's own schema
        assert sql(store_env, "SELECT count(*) FROM outcomes") == [(5,)]
        indexes = dict(sql(store_env, "SELECT indexname, indexdef FROM pg_indexes WHERE "
                                      "schemaname = %s", (store_env,)))
        assert "(application_id, observed_at)" in indexes["uq_outcomes_observation"]
        assert "(observed_at, id)" in indexes["ix_outcomes_observed_at_id"]


def test_load_from_a_sql_query(store_env, schema, monkeypatch, capsys):
    """The source: a table of the loan system in PostgreSQL (its own schema), read by a query
    that names the columns; the URL comes from an environment variable."""
    with psycopg.connect(CONNINFO, autocommit=True, options=f"-csearch_path={schema}") as conn:
        conn.execute("CREATE TABLE loan_book (loan_id text, status text, closed date, "
                     "bad integer)")
        conn.execute("INSERT INTO loan_book VALUES ('Q1', 'closed', '2024-01-05', 1), "
                     "('Q2', 'closed', '2024-01-06', 0), ('Q3', 'open', NULL, NULL)")
    monkeypatch.setenv("LOAN_BOOK_URL", url_for(schema))
    query = ("SELECT loan_id AS application_id, bad AS defaulted, closed AS observed_at "
             "FROM loan_book WHERE status = 'closed'")
    out = _load(capsys, "--sql", query, "--url-env", "LOAN_BOOK_URL")
    assert (out["read"], out["new"]) == (2, 2)
    assert _load(capsys, "--sql", query, "--url-env", "LOAN_BOOK_URL")["new"] == 0
    with open_outcomes(Settings()) as store:
        assert {(r["application_id"], r["defaulted"]) for r in store.read()} == {
            ("Q1", True), ("Q2", False)}
    # bad queries are named, nothing is stored
    for args, message in [
        (["--sql", "SELECT loan_id AS application_id FROM loan_book", "--url-env",
          "LOAN_BOOK_URL"], "the query gives no column defaulted, observed_at"),
        (["--sql", "SELECT loan_id AS application_id, bad AS defaulted, closed AS "
          "observed_at FROM loan_book", "--url-env", "LOAN_BOOK_URL"],
         "query row 3: defaulted None is not yes/no"),
        (["--sql", "SELECT * FROM nowhere", "--url-env", "LOAN_BOOK_URL"],
         "the query failed: UndefinedTable"),
        (["--sql", "SELECT 1", "--url-env", "NO_SUCH_VARIABLE"],
         "environment variable NO_SUCH_VARIABLE is not set"),
    ]:
        capsys.readouterr()
        assert main(["outcomes", "load", *args]) == 1
        assert message in capsys.readouterr().err
    assert main(["outcomes", "load", "--sql", "SELECT 1"]) == 2  # a usage error
    assert "--url-env VAR" in capsys.readouterr().err
    with open_outcomes(Settings()) as store:
        assert store.count() == 2


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty, expected a header"),
    ("application_id,defaulted\nL1,yes\n", "no column observed_at"),
    ("application_id,defaulted,observed_at\nL1,maybe,2024-01-01\n",
     "line 2: defaulted 'maybe' is not yes/no, true/false or 1/0"),
    ("application_id,defaulted,observed_at\nL1,yes,2024-01-01\nL2,no,31/01/2024\n",
     "line 3: observed_at '31/01/2024' is not an ISO date"),
    ("application_id,defaulted,observed_at\n,yes,2024-01-01\n", "line 2: application_id is empty"),
    ("application_id,defaulted,observed_at\n" + "x" * 101 + ",yes,2024-01-01\n",
     "longer than 100 characters"),
])
def test_bad_files_are_named_and_store_nothing(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert main(["outcomes", "load", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("credit-risk: error: ") and message in err, err
    assert not (tmp_path / "outcomes.jsonl").exists() or \
        JsonlOutcomes(tmp_path / "outcomes.jsonl").count() == 0
    with pytest.raises(OutcomesError, match="cannot be read"):
        list(read_csv(tmp_path / "missing.csv"))


def test_where_outcomes_go_by_default(tmp_path):
    assert outcomes_target(Settings(decision_log=tmp_path / "d" / "log.jsonl")) == \
        tmp_path / "d" / "outcomes.jsonl"
    url = "postgresql+psycopg://u@h/db"
    assert outcomes_target(Settings(decision_log=url)) == url  # the decision log's database
    assert outcomes_target(Settings(outcomes="postgres://u@h/other")) == \
        "postgresql+psycopg://u@h/other"
    assert isinstance(open_outcomes(target=url), PostgresOutcomes)
    with pytest.raises(ValueError, match="outcomes URL scheme 'mysql'"):
        Settings(outcomes="mysql://u@h/db")


def test_outcomes_table_needs_the_migration(schema, tmp_path):
    store = PostgresOutcomes(url_for(schema))
    with store, pytest.raises(OutcomesError, match="outcomes migrate"):
        store.load([{"application_id": "A", "defaulted": True,
                     "observed_at": datetime(2024, 1, 1, tzinfo=UTC)}])
    # the decisions' migrate creates it too (one chain of migrations)
    dlog = decision_log_at(url_for(schema))
    try:
        dlog.migrate()
    finally:
        dlog.close()
    with PostgresOutcomes(url_for(schema)) as store:
        assert store.load([{"application_id": "A", "defaulted": True,
                            "observed_at": "2024-01-01"}]) == 1


# -- the API's and the form's application_id ------------------------------------------------
@pytest.fixture
def client(trained, tmp_path):
    from serving import create_app

    settings = trained[0].model_copy(update={"decision_log": tmp_path / "decisions.jsonl"})
    app = create_app(settings, watch=False)
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client(), decision_log_at(settings.decisions.url)


def _application(client) -> dict:
    return {f["name"]: f["default"] for f in client.get("/api/v1/model").json["inputs"]}


def test_api_application_id_round_trip_into_the_log(client):
    client, log = client
    app = _application(client)
    one = client.post("/api/v1/predict", json={**app, "application_id": "L000123"})
    assert one.status_code == 200, one.json
    batch = client.post("/api/v1/predict/batch", json={"applications": [
        {**app, "application_id": "B1"}, app, {**app, "application_id": "B3"}]})
    assert batch.status_code == 200, batch.json
    slow = client.post("/api/v1/predict/batch", json={"applications": [  # the per-row path
        {**app, "application_id": "C1", "age": float(app["age"])}]})
    assert slow.status_code == 200, slow.json
    ids = [r["inputs"].get("application_id") for r in log.read()]
    assert ids == ["L000123", "B1", None, "B3", "C1"]
    assert one.json["probability_of_default"] == batch.json["results"][1][
        "probability_of_default"]  # not a model input: the same score
    for bad, why in [(7, "must be a string"), ("", "must not be empty"),
                     ("x" * 101, "must be at most 100 characters"),
                     ("a\nb", "must not contain control characters")]:
        r = client.post("/api/v1/predict", json={**app, "application_id": bad})
        assert r.status_code == 422 and r.json["fields"]["application_id"] == why
        r = client.post("/api/v1/predict/batch", json={"applications": [
            app, {**app, "application_id": bad}]})
        assert r.status_code == 422 and r.json["fields"] == {"1": {"application_id": why}}
    assert len(log.read()) == 5  # nothing invalid was decided
    doc = client.get("/openapi.json").json["components"]["schemas"]["Application"]
    field = doc["properties"]["application_id"]
    assert "application_id" not in doc["required"]
    assert {"type": "string", "maxLength": 100, "minLength": 1}.items() <= \
        field["anyOf"][0].items()


def test_form_application_id_is_optional_and_recorded(client):
    client, log = client
    app = _application(client)
    page = client.get("/").text
    assert 'name="application_id"' in page and "(optional)" in page
    form = {k: "" if v is None else str(v) for k, v in app.items()}
    assert client.post("/", data={**form, "application_id": " F-77 "}).status_code == 200
    assert client.post("/", data=form).status_code == 200
    bad = client.post("/", data={**form, "application_id": "x" * 101})
    assert bad.status_code == 422 and "at most 100 characters" in bad.text
    assert [r["inputs"].get("application_id") for r in log.read()] == ["F-77", None]
