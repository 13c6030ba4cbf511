"""The HTTP floor: a Flask endpoint answering constant JSON under the same gunicorn settings."""

from flask import Flask, jsonify

app = Flask(__name__)
BODY = {"probability_of_default": 0.0123, "risk": "Low", "credit_score": 720, "rating": "Good"}


@app.post("/predict")
def predict():
    return jsonify(BODY)
