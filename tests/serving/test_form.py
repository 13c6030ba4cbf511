import re

import pytest


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
    grade = re.search(r'id="grade">(\w+) <small>\(master scale: PD ([\d.]+)% to ([\d.]+)%', html)
    pd_ = float(re.search(r'id="pd">([\d.]+)%', html)[1])
    assert float(grade[2]) <= pd_ <= float(grade[3])  # the PD lies in its grade's bounds


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


def _post_with(client, application, csrf, **changes):
    data = {**{k: str(v) for k, v in application.items()}, **changes,
            "csrf_token": csrf(client)}
    return client.post("/", data=data)


def _category(application):
    return next(k for k, v in application.items() if isinstance(v, str))


@pytest.mark.parametrize(("text", "why"), [
    ("Salaried\x00", "control characters"),
    ("\u202eSalaried", "bidirectional control marks (U+202E)"),
    ("S" * 5000, "at most 200 characters"),
])
def test_odd_text_in_a_form_field_names_the_field(client, application, csrf, text, why):
    name = _category(application)
    r = _post_with(client, application, csrf, **{name: text})
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and f'id="{name}-error"' in html and why in html
    assert 'id="pd"' not in html


@pytest.mark.parametrize(("text", "why"), [
    ("L-1\u202e", "bidirectional control marks (U+202E)"),
    ("L\x07", "control characters"),
    ("Cafe\u0301", "normal form NFC"),
    ("L" * 101, "at most 100 characters"),
])
def test_odd_text_in_the_application_id_names_it(client, application, csrf, text, why):
    r = _post_with(client, application, csrf, application_id=text)
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="application_id-error"' in html and why in html


@pytest.mark.parametrize("text", ["\u0663\u0665", "3_5", "\uff13\uff15", "35\u200f"])
def test_a_number_is_written_in_ascii_digits(client, application, csrf, text):
    """Other scripts' digits, underscores and marks are not read as a number."""
    r = _post_with(client, application, csrf, age=text)
    assert r.status_code == 422 and "must be a number" in r.get_data(as_text=True)


def test_surrounding_spaces_and_a_plus_sign_are_still_a_number(client, application, csrf):
    r = _post_with(client, application, csrf, age=f"  +{application['age']} ")
    assert r.status_code == 200 and 'id="pd"' in r.get_data(as_text=True)
