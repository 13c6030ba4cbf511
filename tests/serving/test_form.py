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


def _submit(client, application, csrf):
    r = client.post("/", data={**{k: str(v) for k, v in application.items()},
                               "csrf_token": csrf(client)})
    assert r.status_code == 200
    return r.get_data(as_text=True)


def test_form_draws_the_bands_the_server_defines(client, application, csrf, monkeypatch):
    """The gauge, the legend and the rating all follow `credit_risk.scoring.bands`: change
    the definition and the page changes with it."""
    import re

    from credit_risk.scoring import bands

    html = _submit(client, application, csrf)
    assert re.findall(r'data-band="(\w+)" data-low="([\d,]+)"', html) == [
        (b["name"], f"{b['low']:,.0f}") for b in bands.on_scale(300, 900)]
    assert html.count("<path d=") == len(bands.BANDS)
    rating = re.search(r'id="rating">(\w+)<', html)[1]
    assert f'data-band="{rating}"' in re.search(r'<li [^>]*class="current"[^>]*>', html)[0]

    monkeypatch.setattr(bands, "BANDS", (bands.Band("Poor", -float("inf"), 880, "#111111"),
                                         bands.Band("Excellent", 880, float("inf"), "#222222")))
    html = _submit(client, application, csrf)
    assert re.findall(r'data-band="(\w+)" data-low="([\d,]+)"', html) == [
        ("Poor", "300"), ("Excellent", "880")]
    assert html.count("<path d=") == 2 and 'stroke="#222222"' in html
    assert re.search(r'id="rating">(\w+)<', html)[1] == "Poor"  # the scorer rates with them
