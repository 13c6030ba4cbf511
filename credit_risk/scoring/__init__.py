"""The serving side: the pure-data scoring plan, scores and bands, reasons, the request schema
and the live champion. Needs neither pandas nor scikit-learn (an import-linter contract)."""
