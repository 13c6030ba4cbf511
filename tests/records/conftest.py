from tests.records.pg import pg_server, pg_url, schema  # noqa: F401 - fixtures
