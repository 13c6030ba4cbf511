"""The pure-data scoring plan: the fitted pipeline's numbers, one row or 10,000, no pickle."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from credit_risk.datasets import synthetic
from credit_risk.pipeline.bundle import check_plan, compile_bundle, frame_records, plan_of
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.steps import load_scorer
from credit_risk.pipeline.train import train_candidate
from credit_risk.registry import Registry
from credit_risk.scoring.plan import ARRAYS_FILE, PLAN_FILE, PlanError, ScoringPlan
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.fields import validate_application

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def frame(spec):
    return assemble(spec, synthetic.generate(10_000, seed=11)).head(10_000)


@pytest.fixture(scope="module")
def models(trained, spec):
    """Every candidate the fixture run trained (logistic regression, XGBoost), and a forest."""
    import pandas as pd

    settings, _ = trained
    runs = settings.data.runs_dir
    out = {p.stem: joblib.load(p).model for p in runs.glob("*/candidates/*.joblib")}
    train = pd.read_parquet(next(settings.data.runs_dir.glob("*/split/train.parquet")))
    out["random_forest"] = train_candidate(
        "random_forest", train.drop(columns=["__target__"]), train["__target__"].to_numpy(),
        spec, settings.model_copy(update={"search_iterations": 1})).model
    return out


def test_every_model_kind_compiles_to_pure_data(models):
    kinds = {name: plan_of(m).kind for name, m in models.items()}
    assert kinds == {"logistic_regression": "linear", "xgboost": "xgboost",
                     "random_forest": "forest"}
    for model in models.values():
        files = compile_bundle(model)
        assert b"\x80" not in files[PLAN_FILE]  # JSON text, not a pickle stream
        np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False)  # plain arrays only


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_rows_match_the_feature_transformer(models, frame, name):
    model = models[name]
    plan = plan_of(model)
    records = frame_records(frame[model.features.numeric_inputs_ + model.features.categorical_])
    expected = model.features.transform(frame)
    batch = plan.rows(records)
    assert batch.shape == expected.shape == (10_000, plan.features.width)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    single = np.vstack([plan.rows([r]) for r in records])
    np.testing.assert_array_equal(single, batch)


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_single_and_batch_pds_match_the_pipeline(models, frame, name):
    model = models[name]
    plan = plan_of(model)
    records = frame_records(frame)
    # one row and a matrix go through different BLAS kernels: equal to a few ulps of the logit
    batch = plan.predict_records(records)
    single = np.concatenate([plan.predict_records([r]) for r in records[:2000]])
    np.testing.assert_allclose(single, batch[:2000], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(batch, model.predict_pd(frame), rtol=1e-9, atol=1e-12)
    assert ((batch > 0) & (batch < 1)).all()
    check_plan(model, frame.head(500))  # what publish runs


def test_check_plan_refuses_a_plan_that_differs(models, frame):
    model = models["logistic_regression"]
    broken = joblib.load(io.BytesIO(_dump(model)))
    derived = broken.features.plan_["derived"][0]
    derived["max"] = derived["min"]  # a wrong cap
    with pytest.raises(PlanError, match="differs from the fitted model"):
        check_plan(_Mismatch(model, broken), frame.head(200))


class _Mismatch:
    """Reports the PDs of one model and compiles another: a compiler bug, simulated."""

    def __init__(self, truth, compiled):
        self._truth, self._compiled = truth, compiled

    def predict_pd(self, X):
        return self._truth.predict_pd(X)

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def _dump(obj) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_scorer_single_and_batch_results_are_the_same(trained, frame):
    settings, version = trained
    scorer = load_scorer(settings, version)
    names = [f["name"] for f in scorer.fields]
    raw = frame_records(frame[names])
    records = [clean for clean, errors in (validate_application(scorer.fields, r) for r in raw)
               if not errors]
    assert len(records) > 9_000
    batch = scorer.score_records(records)
    single = [scorer.score_records([r])[0] for r in records]
    keys = ("risk", "credit_score", "rating", "model_version", "warnings")
    assert [tuple(str(r[k]) for k in keys) for r in single] == [
        tuple(str(r[k]) for k in keys) for r in batch]
    np.testing.assert_allclose([r["probability_of_default"] for r in single],
                               [r["probability_of_default"] for r in batch], rtol=1e-9)


def test_xgboost_booster_runs_on_one_thread(models):
    plan = plan_of(models["xgboost"])
    config = json.loads(plan.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_overflowing_features_stay_finite(models, name):
    model = models[name]
    plan = plan_of(model)
    record = {c: model.features.medians_.get(c) for c in model.features.numeric_inputs_}
    record.update(income=1e-300, loan_amount=1e10)
    for rows in (plan.rows([record]), plan.rows([record, record])):
        assert np.isfinite(rows).all()
        pd_ = plan.predict(rows)
        assert np.isfinite(pd_).all() and ((pd_ >= 0) & (pd_ <= 1)).all()


# -- the attack of issue 8: registry write access must not be code execution ----------------
class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def _plant_pickle(registry: Registry, version: str, marker: Path) -> None:
    """Replace model.joblib with a payload and rewrite its hash, as an attacker with write
    access to an unsigned registry would."""
    _Payload.marker = marker
    data = pickle.dumps(_Payload())
    folder = Path(registry.storage.root) / "models" / version
    (folder / "model.joblib").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.joblib"] = hashlib.sha256(data).hexdigest()
    manifest["sizes"]["model.joblib"] = len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_serving_and_predict_never_unpickle(trained, tmp_path):
    import shutil

    settings, version = trained
    shutil.copytree(settings.registry.url, tmp_path / "reg")
    registry = Registry(str(tmp_path / "reg"))
    marker = tmp_path / "pwned"
    _plant_pickle(registry, version, marker)
    # Serving's own loading path, in a fresh interpreter with pickle and joblib booby-trapped.
    code = f"""
import pickle
def trap(*a, **k):
    raise SystemExit("unpickled")
pickle.loads = pickle.load = trap
pickle.Unpickler = trap
from credit_risk.registry import Registry
from credit_risk.scoring.scorer import Scorer
s = Scorer.load(Registry({str(tmp_path / 'reg')!r}), {version!r})
app = {{f["name"]: f["default"] for f in s.fields}}
print(s.score_records([app])[0]["probability_of_default"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 0 < float(out.stdout.split()[0]) < 1
    assert not marker.exists()
    # The CLI's predict too.
    apps = tmp_path / "apps.csv"
    scorer = Scorer.load(registry, version)
    import pandas as pd

    pd.DataFrame([{f["name"]: f["default"] for f in scorer.fields}]).to_csv(apps, index=False)
    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": str(tmp_path / "reg"),
           "CREDIT_RISK_DECISION_LOG": str(tmp_path / "d.jsonl")}
    cli = str(Path(sys.executable).parent / "credit-risk")
    out = subprocess.run([cli, "predict", str(apps), "-o",
                          str(tmp_path / "out.csv")], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert "probability_of_default" in (tmp_path / "out.csv").read_text()


def test_a_version_without_a_plan_is_refused_with_how_to_fix(trained, tmp_path):
    import shutil

    settings, version = trained
    shutil.copytree(settings.registry.url, tmp_path / "reg")
    registry = Registry(str(tmp_path / "reg"))
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"]
             if not n.startswith(("plan.", "booster."))}
    meta = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    old = registry.publish(files, meta)
    with pytest.raises(PlanError, match="older credit-risk.*train and publish a new version"):
        Scorer.load(registry, old)


def test_an_array_file_needing_pickle_is_refused(models):
    files = compile_bundle(models["logistic_regression"])
    buf = io.BytesIO()
    np.savez(buf, linear_w=np.array([object()], dtype=object))
    files[ARRAYS_FILE] = buf.getvalue()
    with pytest.raises(PlanError, match="unreadable scoring plan"):
        ScoringPlan.from_files(files)


# -- one XGBoost row without a call into XGBoost ------------------------------------------
def test_the_walk_of_the_trees_gives_xgboosts_margin_bit_for_bit(models, frame):
    plan = plan_of(models["xgboost"])
    assert plan.walk_margin
    rows = plan.rows(frame_records(frame.head(3000))).astype(np.float32)
    theirs = plan.booster.inplace_predict(rows, predict_type="margin", validate_features=False)
    ours = np.array([plan.trees.walk(r)[0] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(ours, theirs)


def test_one_xgboost_row_scores_as_in_a_batch(trained, models, frame):
    settings, version = trained
    manifest = Registry(settings.registry.url).manifest(version)
    scorer = Scorer(plan_of(models["xgboost"]), manifest)
    records = [r for r in frame_records(frame[[f["name"] for f in scorer.fields]].head(400))
               if not validate_application(scorer.fields, r)[1]]
    batch = scorer.score_records(records)  # XGBoost's inplace_predict, DMatrix contributions
    single = [scorer.score_records([r])[0] for r in records]  # the NumPy walk
    assert [r["probability_of_default"] for r in single] == \
        [r["probability_of_default"] for r in batch]
    assert [[x["feature"] for x in r["reasons"]] for r in single] == \
        [[x["feature"] for x in r["reasons"]] for r in batch]


class _FakeBooster:
    def __init__(self, trees):
        self.model = {"learner": {
            "gradient_booster": {"name": "gbtree", "model": {"trees": trees}},
            "objective": {"name": "binary:logistic"},
            "learner_model_param": {"base_score": "5E-1"}}}

    def save_raw(self, kind):
        return json.dumps(self.model).encode()

    def num_features(self):
        return 2


def test_trees_whose_children_loop_back_are_refused():
    from credit_risk.scoring.trees import TreeEnsemble

    tree = {"left_children": [1, 0, -1], "right_children": [2, 2, -1],  # node 1 -> node 0
            "default_left": [True, True, True], "split_indices": [0, 1, 0],
            "split_conditions": [0.5, 0.5, 0.1], "sum_hessian": [3.0, 2.0, 1.0]}
    with pytest.raises(ValueError, match="children do not follow"):
        TreeEnsemble(_FakeBooster([tree]))


def test_forest_arrays_pointing_outside_are_refused(models):
    files = compile_bundle(models["random_forest"])
    with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["forest_left"][0, 0] = 10**9
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    files[ARRAYS_FILE] = buf.getvalue()
    with pytest.raises(PlanError, match="not a set of trees"):
        ScoringPlan.from_files(files)


# -- a plan that would answer with nonsense or crash the worker is refused at load ----------
def _with_arrays(files, **changes):
    with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return {**files, ARRAYS_FILE: buf.getvalue()}


def _isotonic(files):
    """The plan with an isotonic calibration of three points."""
    plan = json.loads(files[PLAN_FILE])
    plan["calibration"] = {"kind": "isotonic", "pd_floor": 0.0003}
    files = _with_arrays(files, isotonic_x=np.array([0.1, 0.5, 0.9]),
                         isotonic_y=np.array([0.01, 0.2, 0.6]))
    return {**files, PLAN_FILE: json.dumps(plan).encode()}


def test_a_calibration_giving_nan_is_refused(models):
    files = _isotonic(compile_bundle(models["logistic_regression"]))
    ScoringPlan.from_files(files)  # valid as it is
    ys = np.array([0.01, 0.2, np.nan])
    with pytest.raises(PlanError, match="not all finite"):
        ScoringPlan.from_files(_with_arrays(files, isotonic_y=ys))
    ys[-1] = 2.0
    with pytest.raises(PlanError, match="increasing map into"):
        ScoringPlan.from_files(_with_arrays(files, isotonic_y=ys))


def test_compressed_arrays_are_refused(models):
    files = compile_bundle(models["logistic_regression"])
    with np.load(io.BytesIO(files[ARRAYS_FILE])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with pytest.raises(PlanError, match="compressed or oversized"):
        ScoringPlan.from_files({**files, ARRAYS_FILE: buf.getvalue()})


def test_a_forest_deeper_than_its_nodes_is_refused(models):
    files = compile_bundle(models["random_forest"])
    plan = json.loads(files[PLAN_FILE])
    plan["head"]["depth"] = 10**12
    with pytest.raises(PlanError, match="not a set of trees"):
        ScoringPlan.from_files({**files, PLAN_FILE: json.dumps(plan).encode()})


@pytest.mark.parametrize("booster", [b"", b"{", bytes(range(256)) * 8])
def test_an_unsigned_booster_that_crashes_xgboost_is_refused_not_fatal(models, booster):
    files = {**compile_bundle(models["xgboost"]), "booster.ubj": booster}
    with pytest.raises(PlanError, match="booster.ubj"):
        ScoringPlan.from_files(files, signed=False)  # loaded in a probe process first


# -- every plan is checked when read, signed or not (issue 18, defect 6) -------------------------
def _parts(model):
    """A compiled plan as its data: the JSON dict, the arrays and the booster bytes."""
    files = compile_bundle(model)
    with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(files[PLAN_FILE]), arrays, files.get("booster.ubj")


def _decreasing(plan, arrays):
    plan["calibration"] = {"kind": "spline", "pd_floor": 0.0003}
    arrays["spline_x"], arrays["spline_y"] = np.array([0.1, 0.5]), np.array([0.3, 0.2])


def _sigmoid_falling(plan, arrays):
    plan["calibration"] = {"kind": "sigmoid", "slope": -0.5, "intercept": 0.0}


def _cap_inverted(plan, arrays):
    step = plan["features"]["numeric"][0]
    step["min"], step["max"] = step["max"] + 1, step["min"]


def _derived_inverted(plan, arrays):
    step = plan["features"]["derived"][0]
    step["min"], step["max"] = step["max"] + 1, step["min"]


def _scale_falling(plan, arrays):
    plan["master_scale"]["grades"][1]["max_pd"] = 0.0001


def _scale_short_of_one(plan, arrays):
    plan["master_scale"]["grades"][-1]["max_pd"] = 0.9


def _scale_malformed(plan, arrays):
    plan["master_scale"] = {"grades": [{"name": "A"}]}


def _scale_names_twice(plan, arrays):
    plan["master_scale"]["grades"][1]["name"] = plan["master_scale"]["grades"][0]["name"]


def _floor_outside(plan, arrays):
    plan["calibration"]["pd_floor"] = 0.7


def _median_nan(plan, arrays):
    plan["features"]["numeric"][1]["median"] = float("nan")


def _name_dropped(plan, arrays):
    plan["features"]["names"].pop()


def _category_dropped(plan, arrays):
    """Consistent feature steps one column narrower than the model head."""
    column = plan["features"]["categorical"][-1]
    gone = column["categories"].pop()
    plan["features"]["names"].remove(f"{column['name']}={gone}")


def _weights_short(plan, arrays):
    arrays["linear_w"] = arrays["linear_w"][:-1]


def _expr_unknown(plan, arrays):
    plan["features"]["derived"][0]["expr"] = "no_such_input / 2"


def _head_missing(plan, arrays):
    del plan["head"]


def _forest_feature_outside(plan, arrays):
    arrays["forest_feature"][0, 0] = len(plan["features"]["names"])


def _forest_share_over_one(plan, arrays):
    arrays["forest_share"][0, 0] = 1.5


TAMPERED = [  # (model, change, what the refusal says)
    ("logistic_regression", _decreasing, "not an increasing map into .0, 1.: it falls from"),
    ("logistic_regression", _sigmoid_falling, "slope -0.5 is negative"),
    ("logistic_regression", _scale_falling, "master scale is not valid: upper PD bounds do "
                                            "not increase: grade 2 .0.0001. after 1"),
    ("logistic_regression", _scale_short_of_one, "last grade's upper PD bound is 0.9, not 1"),
    ("logistic_regression", _scale_malformed, "master scale is malformed"),
    ("logistic_regression", _scale_names_twice, "grade names are not unique"),
    ("logistic_regression", _floor_outside, "PD floor 0.7 is not a number in"),
    ("logistic_regression", _cap_inverted, "range of .* has min .* above max"),
    ("logistic_regression", _derived_inverted, "range of .* has min .* above max"),
    ("logistic_regression", _median_nan, "median of .* is nan, not a finite number"),
    ("logistic_regression", _name_dropped, "shapes do not match"),
    ("logistic_regression", _category_dropped, "weights for"),
    ("logistic_regression", _weights_short, "weights for"),
    ("logistic_regression", _expr_unknown, "uses \\['no_such_input'\\], not numeric inputs"),
    ("logistic_regression", _head_missing, "malformed scoring plan: KeyError\\('head'\\)"),
    ("xgboost", _category_dropped, "booster.ubj takes .* features; the plan has"),
    ("random_forest", _forest_feature_outside, "the forest splits on feature"),
    ("random_forest", _forest_share_over_one, "leaf shares of defaults are not inside"),
]


@pytest.mark.parametrize(("name", "change", "says"), TAMPERED,
                         ids=[f"{m}-{c.__name__}" for m, c, _ in TAMPERED])
def test_a_plan_that_does_not_fit_together_is_refused(models, name, change, says):
    plan, arrays, booster = _parts(models[name])
    ScoringPlan(plan, arrays, booster)  # as compiled: loads
    change(plan, arrays)
    with pytest.raises(PlanError, match=says):
        ScoringPlan(plan, arrays, booster)


@pytest.mark.parametrize(("edit", "says"), [
    (lambda plan, arrays: _decreasing(plan, arrays), "falls from"),
    (lambda plan, arrays: _cap_inverted(plan, arrays), "above max"),
    ({"threshold": float("nan")}, "threshold nan is not a PD inside"),
    ({"threshold": 1.5}, "threshold 1.5 is not a PD inside"),
    ({"threshold": "0.3"}, "threshold '0.3' is not a PD inside"),
    ({"threshold": None}, "threshold None is not a PD inside"),
    ({"score_scaling": {"base_odds": -30}}, "needs base odds > 0"),
    ({"score_scaling": {"min_score": 900, "max_score": 300}}, "min score <= max score"),
])
def test_an_unsigned_version_with_nonsense_numbers_is_refused(trained_copy, edit, says):
    """Written as the files of a version in a registry without keys: serving and predict's
    loader refuse it with the reason, and the champion keeps serving."""
    from credit_risk.registry.champion import load_champion, registry_for
    from tests.conftest import republish

    settings, version = trained_copy
    registry = registry_for(settings)
    if callable(edit):
        def rewrite(name, data):
            if name not in (PLAN_FILE, ARRAYS_FILE):
                return data
            plan, arrays, _ = json.loads(files[PLAN_FILE]), dict(base_arrays), None
            edit(plan, arrays)
            if name == PLAN_FILE:
                return json.dumps(plan).encode()
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            return buf.getvalue()

        files = {n: registry.read_file(version, n) for n in (PLAN_FILE, ARRAYS_FILE)}
        with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
            base_arrays = {k: npz[k] for k in npz.files}
        bad = republish(registry, version, rewrite)
    else:
        manifest = registry.manifest(version)
        meta = {k: v for k, v in manifest.items()
                if k not in ("version", "created_at", "files", "sizes", "signature")}
        if "score_scaling" in edit:
            edit = {"score_scaling": {**meta["score_scaling"], **edit["score_scaling"]}}
        bad = registry.publish({n: registry.read_file(version, n) for n in manifest["files"]},
                               {**meta, **edit})
    assert not registry.trusted_keys
    with pytest.raises(PlanError, match=says):
        Scorer.load(registry, bad)
    with pytest.raises(PlanError, match=says):
        load_champion(registry, bad)
    registry.promote(bad, "test: a tampered version")
    from serving import create_app

    ready = create_app(settings, watch=False).test_client().get("/ready").json
    assert ready["model_version"] == version and ready["fallback"] is True
    assert says.split(" ")[0] in (ready["fallback_reason"] or "") + (ready["last_error"] or "")
