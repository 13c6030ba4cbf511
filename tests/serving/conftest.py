import re
from contextlib import ExitStack

import pytest

from serving import create_app
from tests.serving import servers


@pytest.fixture
def app(trained):
    settings, _ = trained
    return create_app(settings, watch=False)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def application(client):
    return {f["name"]: f["default"] for f in client.get("/api/v1/model").json["inputs"]}


def _token(client, path="/"):
    """The CSRF token of a form page (the session cookie that goes with it is in the client)."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match[1]


@pytest.fixture
def csrf():
    return _token


@pytest.fixture
def start_gunicorn(tmp_path):
    """`start_gunicorn(registry_url, **options)`: a ready gunicorn (servers.gunicorn) with its
    files in the test's tmp_path, stopped after the test."""
    with ExitStack() as stack:
        yield lambda registry_url, **options: stack.enter_context(
            servers.gunicorn(registry_url, tmp_path, **options))
