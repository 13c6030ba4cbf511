"""The seed-style baseline: a one-row DataFrame per request, a fitted scikit-learn preprocessor,
`predict_proba`. What a first Flask model server usually looks like; measured against ours.

Loads the artifact written by bench_serving.py (BASELINE_ARTIFACT) with one thread per worker.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seed_model  # noqa: E402,F401  (the pickled preprocessor refers to it)
from flask import Flask, jsonify, request  # noqa: E402

artifact = joblib.load(os.environ["BASELINE_ARTIFACT"])
preprocessor = artifact["preprocessor"]
model = artifact["model"]
model.set_params(n_jobs=1)
threshold = artifact["threshold"]

app = Flask(__name__)


def _score(pd_: float) -> int:
    p = min(max(pd_, 1e-9), 1 - 1e-9)
    return int(np.clip(np.rint(600 - 40 / np.log(2) * np.log(30) + 40 / np.log(2)
                               * np.log((1 - p) / p)), 300, 900))


@app.post("/predict")
def predict():
    df = pd.DataFrame([request.get_json()])
    pd_ = float(model.predict_proba(preprocessor.transform(df))[0, 1])
    score = _score(pd_)
    band = "Excellent" if score >= 750 else "Good" if score >= 650 else \
        "Average" if score >= 500 else "Poor"
    return jsonify(probability_of_default=pd_, risk="High" if pd_ >= threshold else "Low",
                   credit_score=score, rating=band)
