"""What error bodies echo: an unknown key is cut to ECHO_CHARS, a batch lists at most
MAX_FIELD_ERRORS fields and counts the rest, small bodies name every field."""

from serving.api import ECHO_CHARS, MAX_FIELD_ERRORS


def test_a_huge_unknown_key_is_not_echoed_in_full(client, application):
    name = "x" * (1 << 20)
    r = client.post("/api/v1/predict", json={**application, name: 1})
    assert r.status_code == 422
    assert len(r.get_data()) < 2000
    [shown] = [k for k in r.json["fields"] if k.startswith("x")]
    assert shown == "x" * ECHO_CHARS + "…"
    batch = client.post("/api/v1/predict/batch", json={"applications": [application],
                                                        name: 1})
    assert batch.status_code == 422 and len(batch.get_data()) < 2000
    assert list(batch.json["fields"]) == ["x" * ECHO_CHARS + "…"]


def test_a_batch_error_body_lists_a_bounded_number_of_fields(client, application):
    bad = {**application, **{f"extra_{i}": 1 for i in range(50)}}
    r = client.post("/api/v1/predict/batch", json={"applications": [bad] * 2000})
    assert r.status_code == 422
    listed = sum(len(v) for v in r.json["fields"].values())
    assert listed == MAX_FIELD_ERRORS
    assert r.json["fields_omitted"] == 2000 * 50 - MAX_FIELD_ERRORS
    assert len(r.get_data()) < 40_000
    one = client.post("/api/v1/predict", json={**application,
                                               **{f"extra_{i}": 1 for i in range(5000)}})
    assert len(one.json["fields"]) == MAX_FIELD_ERRORS
    assert one.json["fields_omitted"] == 5000 - MAX_FIELD_ERRORS


def test_small_error_bodies_are_unchanged(client, application):
    r = client.post("/api/v1/predict", json={**application, "income": "a lot", "zz": 1})
    assert r.json == {"error": "invalid application",
                      "fields": {"income": "must be a number", "zz": "unknown field"}}
