"""The PostgreSQL server of the records tests (127.0.0.1:5432, trust auth, database `test`; CI
has one too): fixtures giving each test a schema of its own, and helpers to query it. When the
server does not answer, the tests FAIL (they are not skipped): production runs on it."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import psycopg
import pytest

SERVER = os.environ.get("CREDIT_RISK_TEST_POSTGRES", "postgres@127.0.0.1:5432/test")
ROOT_URL = f"postgresql+psycopg://{SERVER}"
CONNINFO = f"postgresql://{SERVER}"


@pytest.fixture(scope="session")
def pg_server():
    try:
        with psycopg.connect(CONNINFO, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must answer at {CONNINFO} for these tests (start it: "
                    f"pg_ctlcluster --skip-systemctl-redirect <version> main start): {exc}")


@pytest.fixture
def schema(pg_server):
    name = f"dl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(CONNINFO, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with psycopg.connect(CONNINFO, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = %s", (name,))
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def url_for(schema: str, port: int | None = None, server: str = SERVER) -> str:
    """The URL of a schema (on another port: the same user and database there)."""
    if port is not None:
        server = server.replace(":5432", f":{port}")
    options = quote(f"-csearch_path={schema}")
    return f"postgresql+psycopg://{server}?options={options}&application_name={schema}"


@pytest.fixture
def pg_url(schema):
    return url_for(schema)


def sql(schema: str, query: str, params: tuple = (), conninfo: str = CONNINFO) -> list[tuple]:
    with psycopg.connect(conninfo, autocommit=True,
                         options=f"-csearch_path={schema}") as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []
