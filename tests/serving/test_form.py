def test_form_lists_every_field_with_defaults(client, application):
    html = client.get("/").get_data(as_text=True)
    for name in application:
        assert f'name="{name}"' in html
    assert "Annual income" in html and "(INR)" in html


def test_form_submission_shows_result(client, application, csrf):
    r = client.post("/", data={**{k: str(v) for k, v in application.items()},
                               "csrf_token": csrf(client)})
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'id="pd"' in html and 'id="rating"' in html


def test_invalid_form_submission_names_the_field(client, application, csrf):
    data = {k: str(v) for k, v in application.items()}
    data["csrf_token"] = csrf(client)
    data["age"] = "abc"
    r = client.post("/", data=data)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'id="age-error"' in html and "must be a number" in html
    assert 'id="pd"' not in html
