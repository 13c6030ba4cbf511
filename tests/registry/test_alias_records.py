"""Alias state and history records: a bad record never crashes the registry (item 2), alias
changes are ordered by a chain, not by anyone's clock (item 3), and with trusted keys the
alias record is signed, so a registry writer cannot move serving by editing it (item 4)."""

import json
import logging

import pytest

from credit_risk.cli import main
from credit_risk.registry import (
    AliasStateError,
    Registry,
    RegistryError,
    SignatureError,
    signing,
)


def _publish(registry, payload=b"model"):
    return registry.publish({"model.bin": payload, "card.md": b"# card"}, {"dataset": "d"})


def _three(registry):
    v1, v2, v3 = (_publish(registry, str(i).encode()) for i in range(3))
    registry.promote(v1, "one", by="alice")
    registry.promote(v2, "two", by="alice")
    return v1, v2, v3


def _aliases(registry):
    return registry.alias_version("champion"), registry.alias_version("previous")


# -- item 2: a bad record is skipped, never a crash -------------------------------------------
@pytest.mark.parametrize("content", ["{", "[]", '{"format": 2, "change": 5}', "null",
                                     '{"changes": 3}', '{"format": 2, "change": "x", "seq": '
                                     '"1", "aliases": {}, "changes": []}', "\udcff"])
def test_an_unreadable_history_record_is_skipped_with_a_warning(store, caplog, content):
    url = store.url
    v1, v2, v3 = _three(Registry(url))
    store.write("history/99999999T000000000000Z-deadbeef-promote.json", content)
    caplog.set_level(logging.WARNING, logger="credit_risk.registry")
    registry = Registry(url)  # constructing it reconciles: no ValueError, no TypeError
    assert _aliases(registry) == (v2, v1)
    assert [h["version"] for h in registry.history()] == [v1, v1, v2]
    registry.promote(v3, "three")
    assert registry.rollback("back") == v2
    assert "history record 99999999T000000000000Z-deadbeef-promote.json skipped" in caplog.text


def test_the_cli_works_with_a_bad_history_record(store, monkeypatch, capsys):
    url = store.url
    v1, v2, _ = _three(Registry(url))
    store.write("history/99999999T000000000000Z-deadbeef-promote.json", "{")
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", url)
    for command in (["models", "list"], ["models", "history"],
                    ["models", "rollback", "--reason", "r"]):
        assert main(command) == 0, capsys.readouterr()
    assert v2 in capsys.readouterr().out
    assert Registry(url).alias_version("champion") == v1


def test_a_corrupt_state_is_rebuilt_from_the_chain_and_never_crashes(store, caplog):
    url = store.url
    v1, v2, _ = _three(Registry(url))
    reader = Registry(url)
    store.write("aliases/state.json", "{")
    with pytest.raises(AliasStateError, match="not valid JSON"):  # a RegistryError
        reader.alias("champion")
    caplog.set_level(logging.WARNING, logger="credit_risk.registry")
    registry = Registry(url)  # a writer's open rebuilds it from the newest history record
    assert "rebuilt from the newest history record" in caplog.text
    assert _aliases(registry) == (v2, v1)
    store.rm("aliases/state.json")
    assert _aliases(Registry(url)) == (v2, v1)


def test_a_corrupt_state_without_history_is_a_registry_error(store):
    url = store.url
    store.write("aliases/state.json", '["not", "a", "record"]')
    registry = Registry(url)
    with pytest.raises(RegistryError, match="malformed"):
        registry.alias_version("champion")
    assert registry.history() == []


# -- item 3: the chain, not the clock --------------------------------------------------------
def test_a_host_with_a_clock_a_day_ahead_does_not_pin_the_aliases(store):
    url = store.url
    v1, v2, v3 = _three(Registry(url))
    Registry(url).promote(v3, "host A", by="alice")
    newest = store.names("history")[-1]  # host A's record, named by its clock...
    store.rename(f"history/{newest}", f"history/99991231T235959000000Z-{newest}")  # far ahead
    assert Registry(url).rollback("bad model", by="bob") == v2
    registry = Registry(url)  # the next open does not undo the operator's rollback
    assert _aliases(registry) == (v2, v3)
    last = registry.history()[-1]
    assert (last["by"], last["version"], last["alias"]) == ("bob", v2, "champion")
    assert [h["version"] for h in registry.history()] == [v1, v1, v2, v2, v3, v3, v2]


def test_a_forged_far_future_record_is_ignored_and_logged(store, caplog):
    url = store.url
    v1, v2, v3 = _three(Registry(url))
    forged_aliases = {"champion": {"version": v3}, "previous": {"version": v1}}
    for name, record in (
            ("99999999T000000000000Z-deadbeef-promote.json",  # an older release's shape
             {"format": 1, "id": "f" * 32, "action": "promote", "at": "9999-01-01", "by": "x",
              "changes": [{"alias": "champion", "version": v3}], "aliases": forged_aliases}),
            ("9999999999-forged-promote.json",  # this release's shape, not on the chain
             {"format": 2, "change": "e" * 32, "seq": 999, "parent": "0" * 32,
              "action": "promote", "at": "9999-01-01", "by": "x",
              "changes": [{"alias": "champion", "version": v3}], "aliases": forged_aliases})):
        store.write(f"history/{name}", json.dumps(record))
    caplog.set_level(logging.WARNING, logger="credit_risk.registry")
    registry = Registry(url)
    assert _aliases(registry) == (v2, v1)
    assert "ignored: it does not follow the alias state" in caplog.text
    assert [h["version"] for h in registry.history()][-3:] == [v1, v1, v2]
    assert registry.rollback("still works") == v1


def test_an_older_release_state_is_continued_by_the_chain(store):
    url = store.url
    registry = Registry(url)
    v1, v2 = _publish(registry, b"1"), _publish(registry, b"2")
    aliases = {"champion": {"version": v2, "set_at": "t", "by": "o", "reason": "r",
                            "replaced": v1},
               "previous": {"version": v1, "set_at": "t", "by": "o", "reason": "r",
                            "replaced": None}}
    store.write("aliases/state.json", json.dumps(
        {"format": 1, "change": "c" * 32, "aliases": aliases}))  # what the last release wrote
    store.write("history/20250101T000000000000Z-cccccccc-promote.json", json.dumps(
        {"format": 1, "id": "c" * 32, "action": "promote", "at": "t", "by": "o",
         "changes": [{"alias": "champion", "version": v2, "replaced": v1, "reason": "r"}],
         "aliases": aliases}))
    registry = Registry(url)
    assert _aliases(registry) == (v2, v1)
    assert registry.rollback("r") == v1
    state = json.loads(store.read("aliases/state.json"))
    assert (state["seq"], state["parent"]) == (1, "c" * 32)
    assert [h["version"] for h in Registry(url).history()] == [v2, v2, v1]


# -- item 4: signed alias records ------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    return signing.generate(tmp_path / "keys")


def _signed(url, keys, sign=True):
    private, public, _ = keys
    return Registry(url, signing_key=signing.load_private_key(private) if sign else None,
                    trusted_keys=[signing.load_public_key(public)])


def test_alias_records_are_signed_with_their_own_format(store, keys):
    url = store.url
    v1, v2, _ = _three(_signed(url, keys))
    state = json.loads(store.read("aliases/state.json"))
    assert state["signature"]["format"] == "credit-risk-aliases-v1"
    assert state["signature"]["key_id"] == keys[2]
    public = [signing.load_public_key(keys[1])]
    assert signing.verify(state, public, signing.ALIASES_FORMAT) == keys[2]
    with pytest.raises(signing.SigningError, match="unknown signature format"):
        signing.verify(state, public)  # not a manifest
    manifest = _signed(url, keys).manifest(v1)
    relabelled = {**manifest, "signature": {**manifest["signature"],
                                            "format": signing.ALIASES_FORMAT}}
    with pytest.raises(signing.SigningError, match="does not match"):
        signing.verify(relabelled, public, signing.ALIASES_FORMAT)  # nor the reverse
    assert all(h["verified"] for h in _signed(url, keys).history())


def test_a_writer_who_edits_the_state_cannot_move_serving(store, keys):
    url = store.url
    signer = _signed(url, keys)
    v1, v2, v3 = _three(signer)  # v3: signed, but say the gate rejected it
    serving = _signed(url, keys, sign=False)
    assert serving.alias_version("champion") == v2
    state = json.loads(store.read("aliases/state.json"))
    state["aliases"]["champion"]["version"] = v3
    store.write("aliases/state.json", json.dumps(state))
    with pytest.raises(SignatureError, match="alias record .* refused: the signature does not"):
        serving.alias_version("champion")
    del state["signature"]
    store.write("aliases/state.json", json.dumps(state))
    with pytest.raises(SignatureError, match="not signed"):
        serving.alias("champion")
    # A forged unsigned history record that follows the state is not applied either.
    record = {**state, "change": "f" * 32, "seq": state["seq"] + 1, "parent": state["change"]}
    store.write("history/9999999999-forged.json", json.dumps(record))
    reopened = _signed(url, keys, sign=False)  # repairs the state from the signed chain
    assert reopened.alias_version("champion") == v2
    assert v3 not in {h["version"] for h in reopened.history() if h["verified"]}


def test_a_writer_never_re_signs_an_edited_state_it_cannot_rebuild(store, keys):
    url = store.url
    signer = _signed(url, keys)
    v1, v2, v3 = _three(signer)
    state = json.loads(store.read("aliases/state.json"))
    state["aliases"]["champion"]["version"] = v3  # the edit: v3 serves, so it claims
    state["datasets"]["d"]["champion"]["version"] = v3
    edited = json.dumps(state)
    store.write("aliases/state.json", edited)
    for name in store.names("history"):  # and the signed chain that would repair it gone
        store.rm(f"history/{name}")
    v4 = _publish(signer)
    for change in (lambda: _signed(url, keys).promote(v4, "four"),
                   lambda: _signed(url, keys).rollback("back")):
        with pytest.raises(SignatureError, match="no alias change is built on it"):
            change()
    assert store.read("aliases/state.json") == edited.encode()  # not re-signed, not replaced
    with pytest.raises(SignatureError, match="refused"):
        _signed(url, keys, sign=False).alias_version("champion")
    store.rm("aliases/state.json")  # the documented way out: start the aliases afresh
    _signed(url, keys).promote(v4, "four")
    assert _signed(url, keys, sign=False).alias_version("champion") == v4


def test_a_signed_change_on_an_unsigned_record_signs_only_its_own_dataset(store, keys, caplog):
    url = store.url
    old = Registry(url)  # before keys (or a writer who stripped the signature)
    d1, e1 = _publish(old), old.publish({"model.bin": b"e"}, {"dataset": "e"})
    old.promote(d1, "d before keys")
    old.promote(e1, "e before keys")
    signer = _signed(url, keys)
    d2 = _publish(signer)
    caplog.set_level(logging.WARNING, logger="credit_risk.registry")
    signer.promote(d2, "d after keys")
    assert "none of its aliases (d, e) is carried into the signed one" in caplog.text
    reader = _signed(url, keys, sign=False)
    assert reader.alias_version("champion", "d") == d2
    assert reader.alias_version("previous", "d") is None  # d1 was chosen by no signer
    assert reader.alias_version("champion", "e") is None  # e needs its own signed promote
    assert list(reader.aliases()) == ["d"]


@pytest.mark.parametrize("unsigned", ["stripped", "older release"])
def test_an_unsigned_state_written_over_a_signed_one_moves_no_alias(store, keys, unsigned):
    """A store writer without the key strips the signature (or writes an older release's
    shape) and deletes the chain: an operator's routine change signs none of it."""
    url = store.url
    v1, v2, v3 = _three(_signed(url, keys))  # v3: signed, but say the gate rejected it
    state = json.loads(store.read("aliases/state.json"))
    aliases = {**state["aliases"], "previous": {**state["aliases"]["previous"], "version": v3}}
    forged = ({**{k: v for k, v in state.items() if k != "signature"}, "aliases": aliases,
               "datasets": {"d": aliases}} if unsigned == "stripped"
              else {"format": 1, "change": "c" * 32, "aliases": aliases})
    store.write("aliases/state.json", json.dumps(forged))
    for name in store.names("history"):
        store.rm(f"history/{name}")
    with pytest.raises(RegistryError, match="no previous champion"):
        _signed(url, keys).rollback("routine")
    v4 = _publish(_signed(url, keys))
    _signed(url, keys).promote(v4, "four")
    reader = _signed(url, keys, sign=False)
    assert reader.alias_version("champion") == v4
    assert reader.alias_version("previous") is None  # not v3, not v2: nothing carried over


def test_a_signer_without_trusted_keys_checks_against_its_own_key(store, keys):
    url = store.url
    private, _, _ = keys
    signer = Registry(url, signing_key=signing.load_private_key(private))
    v1, v2, v3 = _three(signer)
    state = json.loads(store.read("aliases/state.json"))
    state["aliases"]["previous"]["version"] = v3
    state["datasets"]["d"]["previous"]["version"] = v3
    store.write("aliases/state.json", json.dumps(state))
    for name in store.names("history"):
        store.rm(f"history/{name}")
    with pytest.raises(SignatureError, match="no alias change is built on it"):
        Registry(url, signing_key=signing.load_private_key(private)).rollback("routine")


def test_a_replayed_older_state_is_refused_by_a_running_reader(store, keys):
    url = store.url
    signer = _signed(url, keys)
    v1, v2, v3 = _three(signer)
    older = store.read("aliases/state.json")  # champion v2, signed
    serving = _signed(url, keys, sign=False)
    signer.promote(v3, "three")
    assert serving.alias_version("champion") == v3
    store.write("aliases/state.json", older)  # the replay: a validly signed, older decision
    with pytest.raises(AliasStateError, match="replayed older state"):
        serving.alias_version("champion")
    # A writer's next open moves the state forward along the signed chain again.
    assert _signed(url, keys, sign=False).alias_version("champion") == v3
    assert serving.alias_version("champion") == v3


def test_promote_and_rollback_need_the_signing_key_where_they_run(store, keys):
    url = store.url
    v1, v2, v3 = _three(_signed(url, keys))
    verifier = _signed(url, keys, sign=False)
    for attempt in (lambda: verifier.promote(v3, "x"), lambda: verifier.rollback("x"),
                    lambda: verifier.set_alias("champion", v1, "x")):
        with pytest.raises(SignatureError, match="need the signing key where they run"):
            attempt()
    assert verifier.alias_version("champion") == v2


def test_an_unsigned_registry_is_refused_until_a_signed_promote(store, keys):
    url = store.url
    old = Registry(url)
    v1 = _publish(old)
    old.promote(v1, "before keys")
    signer = _signed(url, keys)
    with pytest.raises(SignatureError, match="not signed"):
        signer.alias_version("champion")
    v2 = _publish(signer)
    signer.promote(v2, "after keys")
    assert _signed(url, keys, sign=False).alias_version("champion") == v2
    history = _signed(url, keys, sign=False).history()
    assert [(h["version"], h["verified"]) for h in history] == [  # v1: no signed previous
        (v1, False), (v2, True)]

