"""Ingest from SQL against the real PostgreSQL server on loopback (127.0.0.1:5432, trust auth,
database `test`). The server is a requirement: when it does not answer, these tests fail."""

from __future__ import annotations

import json
import secrets

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from credit_risk.datasets import synthetic
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.ingest import (
    IngestError,
    ingest,
    load_snapshot,
    read_sql_table,
    read_table,
)
from credit_risk.spec.dataset import DatasetSpec, SpecError, SqlSource, load_spec

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENV = "CREDIT_RISK_TEST_SQL_URL"


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """The synthetic tables as written to files, and the same rows in a fresh schema."""
    folder = tmp_path_factory.mktemp("data")
    synthetic.write(synthetic.generate(600, seed=11), folder / "lauki_synthetic")
    schema = f"cr_ingest_{secrets.token_hex(4)}"
    engine = sa.create_engine(URL)
    with engine.begin() as conn:  # fails (does not skip) when the server is down
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        with engine.begin() as conn:
            for name in ("customers", "loans", "bureau"):
                frame = pd.read_csv(folder / "lauki_synthetic" / f"{name}.csv", low_memory=False)
                frame.to_sql(name, conn, schema=schema, index=False)
        yield folder, schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def sql_spec(schema: str, chunksize: int = 50_000, **queries: str) -> DatasetSpec:
    """The built-in spec with every table read by a query (url from $ENV)."""
    spec = load_spec("lauki_synthetic")
    tables = {}
    for name, table in spec.tables.items():
        sql = queries.get(name, f"SELECT * FROM {schema}.{name} ORDER BY 1")
        source = SqlSource(sql=sql, url_env=ENV, chunksize=chunksize)
        tables[name] = table.model_copy(update={"source": source})
    return spec.model_copy(update={"tables": tables})


def test_sql_snapshot_equals_the_file_snapshot(database, tmp_path, monkeypatch):
    folder, schema = database
    monkeypatch.setenv(ENV, URL)
    spec = load_spec("lauki_synthetic")
    by_file = json.loads(ingest(spec, folder, tmp_path / "files").read_text())
    by_sql_path = ingest(sql_spec(schema, chunksize=64), folder, tmp_path / "sql")
    by_sql = json.loads(by_sql_path.read_text())

    assert by_sql["fingerprint"] == by_file["fingerprint"]
    for name, t in by_sql["tables"].items():
        assert t["fingerprint"] == by_file["tables"][name]["fingerprint"]
        assert t["rows"] == 600 and t["columns"] == by_file["tables"][name]["columns"]
        assert t["source"] == f"sql:${ENV}"  # the variable's name, never its value
    _, frames = load_snapshot(by_sql_path)
    _, file_frames = load_snapshot(tmp_path / "files" / by_sql_path.name)
    for name in frames:
        pd.testing.assert_frame_equal(frames[name], file_frames[name])


def test_chunks_are_read_in_order_and_typed_as_one_read(database, monkeypatch):
    folder, schema = database
    monkeypatch.setenv(ENV, URL)
    spec = load_spec("lauki_synthetic")
    expected = pd.read_csv(folder / "lauki_synthetic" / "customers.csv", low_memory=False)
    # residence_type is NULL in a few rows only: most 7-row chunks have it all NULL (object)
    # and some income chunks are all 0; the combined frame must still match a single read.
    for chunksize in (1, 7, 599, 600, 10_000):
        got = read_table(sql_spec(schema, chunksize).tables["customers"], spec, folder,
                         "customers")
        pd.testing.assert_frame_equal(got, expected)


def test_reads_chunk_by_chunk_and_retypes_an_all_null_chunk(database, monkeypatch):
    """`chunksize` rows per fetch; a chunk all NULL in a numeric column gets the column's type."""
    folder, schema = database
    monkeypatch.setenv(ENV, URL)
    sizes: list[int] = []
    read_sql = pd.read_sql

    def counting(*args, **kwargs):
        for chunk in read_sql(*args, **kwargs):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(pd, "read_sql", counting)
    query = (f"SELECT cust_id, CASE WHEN cust_id > 'C00003' THEN age END AS age "
             f"FROM {schema}.customers ORDER BY cust_id")
    source = sql_spec(schema, 3, customers=query).tables["customers"].source
    assert isinstance(source, SqlSource)
    got = read_sql_table(source, "customers")
    assert sizes == [3] * 200
    assert len(got) == 600 and got["age"].dtype == "float64"
    assert got["age"].iloc[:3].isna().all() and got["age"].iloc[3:].notna().all()


def test_a_failing_query_names_the_table(database, monkeypatch):
    folder, schema = database
    monkeypatch.setenv(ENV, URL)
    spec = sql_spec(schema, bureau=f"SELECT * FROM {schema}.no_such_table")
    with pytest.raises(IngestError, match=r"table bureau: the query failed on "
                       r"postgresql\+psycopg://postgres@127\.0\.0\.1:5432/test: .*no_such_table"):
        ingest(spec, folder, folder / "run-failing")
    assert not (folder / "run-failing" / "snapshot.json").exists()


def test_missing_columns_are_named(database, monkeypatch):
    folder, schema = database
    monkeypatch.setenv(ENV, URL)
    spec = sql_spec(schema, loans=f"SELECT loan_id, cust_id, loan_amount FROM {schema}.loans")
    with pytest.raises(IngestError, match=r"table loans: the query returns no column "
                       r"loan_purpose, loan_type, .*default"):
        ingest(spec, folder, folder / "run-columns")


def test_a_password_never_shows(database, monkeypatch):
    folder, schema = database
    secret = "s3cr3t-Pa55"
    spec = sql_spec(schema)
    table = spec.tables["customers"]
    # Wrong port: the connection fails; the message names the database without the password.
    monkeypatch.setenv(ENV, f"postgresql+psycopg://postgres:{secret}@127.0.0.1:1/test")
    with pytest.raises(IngestError) as caught:
        read_table(table, spec, folder, "customers")
    text = str(caught.value)
    assert "table customers" in text and "127.0.0.1:1/test" in text and secret not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    # A wrong password on a password-checked login would fail the same way; a URL that is not
    # one quotes nothing of it.
    for bad in (f"postgresql+psycopg//postgres:{secret}@127.0.0.1/test", f"{secret}@@::"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(IngestError, match="table customers: sql:\\$CREDIT_RISK_TEST_SQL_URL "
                           "is not a SQLAlchemy URL") as caught:
            read_table(table, spec, folder, "customers")
        assert secret not in str(caught.value)
    monkeypatch.setenv(ENV, f"nosuchdb+driver://u:{secret}@h/db")
    with pytest.raises(IngestError, match="table customers: cannot use the database "
                       "nosuchdb\\+driver://u:\\*\\*\\*@h/db") as caught:
        read_table(table, spec, folder, "customers")
    assert secret not in str(caught.value)


def test_an_unset_url_variable_is_named(database, monkeypatch):
    folder, schema = database
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(IngestError, match=f"table loans: the environment variable {ENV} "):
        ingest(sql_spec(schema), folder, folder / "run-unset")


def test_sql_source_syntax(tmp_path):
    spec = load_spec("lauki_synthetic").model_dump(mode="json")
    spec["tables"]["loans"]["source"] = {"sql": "SELECT * FROM loans", "url_env": "LOANS_DB",
                                         "chunksize": 1000}
    parsed = DatasetSpec.model_validate(spec).tables["loans"].source
    assert parsed == SqlSource(sql="SELECT * FROM loans", url_env="LOANS_DB", chunksize=1000)
    bad = [
        ({"sql": "SELECT 1"}, "exactly one of `url` and `url_env`"),
        ({"sql": "SELECT 1", "url": URL, "url_env": "X"}, "exactly one"),
        ({"sql": "SELECT 1", "url": "postgresql://u:pw@h/db"}, "holds a password"),
        ({"sql": "", "url": URL}, "at least 1 character"),
        ({"sql": "SELECT 1", "url_env": "NOT A NAME"}, "should match pattern"),
        ({"sql": "SELECT 1", "url": URL, "chunksize": 0}, "greater than or equal to 1"),
        ({"sql": "SELECT 1", "url": URL, "pasword": "x"}, "Extra inputs are not permitted"),
    ]
    for source, message in bad:
        spec["tables"]["loans"]["source"] = source
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(SpecError, match=message) as caught:
            load_spec(path)
        assert "pw@" not in str(caught.value)
        assert isinstance(caught.value, CreditRiskError)
    spec["tables"]["loans"]["source"] = {"sql": "SELECT 1", "url": URL}
    spec["tables"]["loans"]["format"] = "csv"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="`format` is for file sources"):
        load_spec(path)
