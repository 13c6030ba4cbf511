"""Numbers in JSON bodies beyond 64 bits: a huge integer names its field (422), a finite one is
checked against the field's range, malformed JSON stays a 400."""

import json

import pytest


def _post(client, path, raw: bytes):
    return client.post(path, data=raw, content_type="application/json")


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 5000, "1" + "0" * 400])
def test_a_huge_integer_names_its_field(client, application, number):
    body = json.dumps({**application, "income": 0}).replace('"income": 0', f'"income": {number}')
    r = _post(client, "/api/v1/predict", body.encode())
    assert r.status_code == 422, r.json
    assert r.json["fields"] == {"income": "must be a finite number"}
    batch = _post(client, "/api/v1/predict/batch",
                  b'{"applications": [' + body.encode() + b"]}")
    assert batch.status_code == 422 and batch.json["fields"] == {
        "0": {"income": "must be a finite number"}}


def test_an_integer_beyond_64_bits_but_finite_is_checked_against_the_range(client, application):
    body = json.dumps({**application, "income": 0}).replace('"income": 0',
                                                            '"income": 123456789012345678901234')
    r = _post(client, "/api/v1/predict", body.encode())
    assert r.status_code == 422 and r.json["fields"]["income"].startswith("must be at most")


def test_malformed_json_is_still_400(client):
    for raw in (b'{"income": 99999999999999999999999', b"{'a': 1}", b"[" * 100_000):
        r = _post(client, "/api/v1/predict", raw)
        assert r.status_code == 400 and r.json["error"] == "malformed JSON body"


@pytest.mark.unit
def test_response_json_writes_what_orjson_needs_options_for():
    """NumPy values, non-string keys and other objects in a response: as with orjson's options
    and `default=str`; plain JSON the same bytes without them."""
    from datetime import date

    import numpy as np
    import orjson
    from flask import Flask

    from serving import jsonio

    app = Flask(__name__)
    jsonio.install(app)
    full = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    for obj in ({"pd": np.float64(0.25), "rows": np.arange(3)}, {1: "a", "b": [1.5, None]},
                {"when": date(2026, 1, 2), "set": frozenset({1})},
                {"plain": [1, "x", {"y": None}]}):
        with app.app_context():
            body = app.json.response(obj).get_data()
            text = app.json.dumps(obj)
        assert body == orjson.dumps(obj, default=str, option=full)
        assert text == body.decode()
