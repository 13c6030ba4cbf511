import pytest

from tests.records.cluster import Cluster
from tests.records.pg import pg_server, pg_url, schema  # noqa: F401 - fixtures


@pytest.fixture
def cluster():
    """A throwaway PostgreSQL cluster of the test's own, started, with a role `app`."""
    db = Cluster()
    db.init()
    db.start()
    db.sql("CREATE ROLE app LOGIN")
    db.sql("GRANT ALL ON SCHEMA public TO app")
    yield db
    db.remove()
