"""The alias chain (credit_risk.registry.chain), on a local folder and on S3: records that are
malformed, unsigned, forged, replayed or squatting the next slot are rejected and listed
apart; they never move an alias and never stop the key holder's promote or rollback."""

import json

import pytest

from credit_risk.cli import main
from credit_risk.registry import AliasStateError, Registry, SignatureError, signing


def _publish(registry, payload=b"model"):
    return registry.publish({"model.bin": payload, "card.md": b"# card"}, {"dataset": "d"})


def _three(registry):
    v1, v2, v3 = (_publish(registry, str(i).encode()) for i in range(3))
    registry.promote(v1, "one", by="alice")
    registry.promote(v2, "two", by="alice")
    return v1, v2, v3


def _aliases(registry):
    return registry.alias_version("champion"), registry.alias_version("previous")


def _next_slot(store):
    slots = [int(n.split(".")[0]) for n in store.names("history") if n[0].isdigit()]
    return f"history/{max(slots, default=0) + 1:010d}.json"


def _record(store, seq):
    return json.loads(store.read(f"history/{seq:010d}.json"))


@pytest.fixture
def keys(tmp_path):
    return signing.generate(tmp_path / "keys")


def _signed(url, keys, sign=True):
    private, public, _ = keys
    return Registry(url, signing_key=signing.load_private_key(private) if sign else None,
                    trusted_keys=[signing.load_public_key(public)])


# -- without keys: bad records are skipped -----------------------------------------------------
@pytest.mark.parametrize("content", ["{}", "{", "[]", "null", '{"format": 3, "seq": "1"}',
                                     "\udcff"])
def test_a_bad_record_in_the_next_slot_is_skipped_and_the_next_change_takes_the_slot_after(
        store, content):
    v1, v2, v3 = _three(Registry(store.url))
    squatted = _next_slot(store)
    store.write(squatted, content)
    registry = Registry(store.url)
    assert _aliases(registry) == (v2, v1)
    assert [h["version"] for h in registry.history()] == [v1, v1, v2]
    assert [r["name"] for r in registry.rejected_history()] == [squatted.split("/")[1]]
    registry.promote(v3, "three")
    assert registry.rollback("back") == v2
    assert store.read(squatted) == content.encode("utf-8", "surrogateescape")  # left alone
    assert [h["version"] for h in registry.history()][-4:] == [v2, v3, v3, v2]


def test_the_cli_lists_rejected_records_apart_and_verify_reports_them(store, monkeypatch,
                                                                      capsys):
    v1, v2, _ = _three(Registry(store.url))
    store.write(_next_slot(store), "{}")
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", store.url)
    for command in (["models", "list"], ["models", "rollback", "--reason", "r"]):
        assert main(command) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["models", "history"]) == 0
    out, err = capsys.readouterr()
    assert "REJECTED history records" in err and "0000000003.json" in err
    assert "0000000003.json" not in out and "rollback: r" in out
    assert main(["models", "verify"]) == 1
    assert "not an alias record" in capsys.readouterr().err
    assert Registry(store.url).alias_version("champion") == v1


def test_a_far_ahead_record_off_the_chain_is_rejected(store):
    v1, v2, v3 = _three(Registry(store.url))
    head = _record(store, 2)
    store.write("history/0000000999.json", json.dumps(
        {**head, "seq": 999, "parent": "0" * 64, "change": "e" * 32}))
    registry = Registry(store.url)
    assert _aliases(registry) == (v2, v1)
    assert "does not follow the chain" in registry.rejected_history()[0]["reason"]
    registry.promote(v3, "three")
    assert "history/0000001000.json" in [f"history/{n}" for n in store.names("history")]
    assert _aliases(Registry(store.url)) == (v3, v2)


def test_the_state_file_is_a_copy_that_moves_nothing(store):
    v1, v2, v3 = _three(Registry(store.url))
    state = json.loads(store.read("aliases/state.json"))
    assert state == _record(store, 2)
    state["datasets"]["d"]["champion"]["version"] = v3
    store.write("aliases/state.json", json.dumps(state))
    assert _aliases(Registry(store.url)) == (v2, v1)
    store.write("aliases/state.json", "{")
    assert Registry(store.url).rollback("still works") == v1


# -- with keys: the chain is made of verified records only ------------------------------------
def test_alias_records_are_signed_over_their_sequence_number_and_parent(store, keys):
    v1, v2, _ = _three(_signed(store.url, keys))
    first, second = _record(store, 1), _record(store, 2)
    assert second["signature"]["format"] == "credit-risk-aliases-v1"
    assert second["signature"]["key_id"] == keys[2]
    assert first["parent"] is None and len(second["parent"]) == 64
    public = [signing.load_public_key(keys[1])]
    assert signing.verify(second, public, signing.ALIASES_FORMAT) == keys[2]
    for field, value in (("seq", 9), ("parent", "0" * 64)):
        with pytest.raises(signing.SigningError, match="does not match"):
            signing.verify({**second, field: value}, public, signing.ALIASES_FORMAT)
    with pytest.raises(signing.SigningError, match="unknown signature format"):
        signing.verify(second, public)  # not a manifest
    assert all(h["verified"] for h in _signed(store.url, keys).history())


def _unsigned_writer(store, version):
    """A writer without the key (or with write access only) promotes: an unsigned record."""
    Registry(store.url).promote(version, "no key here", by="mallory")


def _forged(store, keys):
    """The genuine head with the champion changed and its signature kept, in the next slot."""
    head = _record(store, max(int(n[:10]) for n in store.names("history") if n[0].isdigit()))
    genuine = _signed(store.url, keys, sign=False).chain.read().head
    forged = json.loads(json.dumps(head))
    forged["datasets"]["d"]["champion"]["version"] = forged["datasets"]["d"]["previous"][
        "version"]
    slot = _next_slot(store)
    forged.update(seq=int(slot[8:18]), parent=genuine.digest())
    store.write(slot, json.dumps(forged))


def _replayed(store, keys):
    """The oldest signed record, byte for byte, in the next slot."""
    store.write(_next_slot(store), store.read("history/0000000001.json"))


def _empty(store, keys):
    store.write(_next_slot(store), "{}")


@pytest.mark.parametrize("attack", [_empty, _unsigned_writer, _forged, _replayed])
def test_a_bad_record_never_stops_the_key_holder(store, keys, attack):
    signer = _signed(store.url, keys)
    v1, v2, v3 = _three(signer)
    if attack is _unsigned_writer:
        attack(store, v3)
    else:
        attack(store, keys)
    reader = _signed(store.url, keys, sign=False)
    assert _aliases(reader) == (v2, v1)
    assert [h["version"] for h in reader.history()] == [v1, v1, v2]
    (rejected,) = reader.rejected_history()
    assert rejected["name"] == "0000000003.json"
    expected = {_empty: "not an alias record", _unsigned_writer: "not signed",
                _forged: "signature does not match", _replayed: "sequence number 1 is not"}
    assert expected[attack] in rejected["reason"]
    signer.promote(v3, "three")
    assert signer.rollback("back") == v2
    assert _aliases(reader) == (v2, v3)
    assert [h["seq"] for h in reader.history()][-4:] == [4, 4, 5, 5]
    assert all(h["verified"] for h in reader.history())


def test_a_signed_record_whose_parent_is_not_the_head_is_refused(store, keys):
    """Bound parent: a record signed with the key but built on an older record (a fork, or a
    replay re-signed under a new number) is not on the chain."""
    signer = _signed(store.url, keys)
    v1, v2, _ = _three(signer)
    first = signer.chain.read().records[0]
    stale = {**first.body(), "seq": 3, "parent": first.digest(), "change": "f" * 32}
    store.write("history/0000000003.json", json.dumps(signing.sign(
        stale, signer.signing_key, signing.ALIASES_FORMAT)))
    reader = _signed(store.url, keys, sign=False)
    assert _aliases(reader) == (v2, v1)
    assert "does not follow the chain" in reader.rejected_history()[0]["reason"]


def test_removing_the_newest_records_is_refused_by_a_running_reader(store, keys):
    signer = _signed(store.url, keys)
    v1, v2, v3 = _three(signer)
    serving = _signed(store.url, keys, sign=False)
    signer.promote(v3, "three")
    assert serving.alias_version("champion") == v3
    store.rm("history/0000000003.json")
    with pytest.raises(AliasStateError, match="older than .* seen before"):
        serving.alias_version("champion")


def test_a_signed_change_after_unsigned_records_carries_none_of_them(store, keys):
    old = Registry(store.url)  # before keys (or a writer without them)
    d1, e1 = _publish(old), old.publish({"model.bin": b"e"}, {"dataset": "e"})
    old.promote(d1, "d before keys")
    old.promote(e1, "e before keys")
    signer = _signed(store.url, keys)
    assert signer.alias_version("champion", "d") is None  # unsigned: not on the chain
    d2 = _publish(signer)
    signer.promote(d2, "d after keys")
    reader = _signed(store.url, keys, sign=False)
    assert reader.alias_version("champion", "d") == d2
    assert reader.alias_version("previous", "d") is None  # d1 was chosen by no signer
    assert reader.alias_version("champion", "e") is None  # e needs its own signed promote
    assert list(reader.aliases()) == ["d"]
    assert [(h["version"], h["verified"]) for h in reader.history()] == [(d2, True)]
    assert len(reader.rejected_history()) == 2


def test_a_signer_without_trusted_keys_builds_only_on_its_own_records(store, keys):
    signer = Registry(store.url, signing_key=signing.load_private_key(keys[0]))
    v1, v2, v3 = _three(signer)
    Registry(store.url).promote(v3, "unsigned")
    assert signer.rollback("routine") == v1


def test_promote_and_rollback_need_the_signing_key_where_they_run(store, keys):
    v1, v2, v3 = _three(_signed(store.url, keys))
    verifier = _signed(store.url, keys, sign=False)
    for attempt in (lambda: verifier.promote(v3, "x"), lambda: verifier.rollback("x"),
                    lambda: verifier.set_alias("champion", v1, "x")):
        with pytest.raises(SignatureError, match="need the signing key where they run"):
            attempt()
    assert verifier.alias_version("champion") == v2


def test_a_wrong_key_without_trusted_keys_starts_no_chain_of_its_own(store, keys, tmp_path):
    """A worker given another key and no trusted keys finds only records it cannot verify:
    promote refuses (and the check publish runs first refuses) instead of starting afresh."""
    v1, v2, v3 = _three(Registry(store.url, signing_key=signing.load_private_key(keys[0])))
    other, _, _ = signing.generate(tmp_path / "other")
    rogue = Registry(store.url, signing_key=signing.load_private_key(other))
    before = sorted(store.names("history"))
    for attempt in (rogue.check_can_change_aliases, lambda: rogue.promote(v3, "rogue")):
        with pytest.raises(SignatureError, match="signed by another key"):
            attempt()
    assert sorted(store.names("history")) == before
    assert _aliases(_signed(store.url, keys, sign=False)) == (v2, v1)
