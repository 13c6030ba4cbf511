"""With API keys set, the web form is not an open side door to the API by default."""

from credit_risk.config import Settings


def test_form_defaults_to_api_key_login_when_keys_are_set(monkeypatch):
    monkeypatch.setenv("CREDIT_RISK_API_KEYS", "k1,k2")
    assert Settings().serving.form_auth == "api_key"
    monkeypatch.setenv("CREDIT_RISK_FORM_AUTH", "open")  # an explicit choice is kept
    assert Settings().serving.form_auth == "open"
    monkeypatch.delenv("CREDIT_RISK_API_KEYS")
    monkeypatch.delenv("CREDIT_RISK_FORM_AUTH")
    assert Settings().serving.form_auth == "open"
