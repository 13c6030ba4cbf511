import pytest

from serving import create_app


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
