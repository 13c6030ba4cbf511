"""A chunked form post (no Content-Length) over the body limit is a 413, not the CSRF page's
400, on the form and the login page."""

from serving import create_app
from tests.serving import servers


def test_chunked_form_post_over_the_limit_is_413(trained):
    app = create_app(trained[0].model_copy(update={"api_keys": ("k-one",)}), watch=False)
    with servers.in_thread(app) as base:  # a real HTTP server: the test client sets a length
        for path in ("/", "/login"):
            assert servers.chunked_form(base, path, 17) == 413, path
