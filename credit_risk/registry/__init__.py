"""The model registry: immutable signed versions and the signed alias chain, on a local folder
or S3. `Registry` (registry.py) is the one entry point; see each module for its part:
storage (backends, conditional writes, bounded reads), records (typed manifest and alias
records), versions, chain (aliases), fallback (what serving may fall back to) and champion
(serving's live model, imported on its own: it needs the scoring package)."""

from credit_risk.registry.errors import (
    AliasStateError,
    ChecksumError,
    RegistryError,
    SignatureError,
)
from credit_risk.registry.records import MANIFEST, sha256_bytes, valid_dataset
from credit_risk.registry.registry import Registry, dataset_of

MODEL_FILE = "model.joblib"

__all__ = ["MANIFEST", "MODEL_FILE", "AliasStateError", "ChecksumError", "Registry",
           "RegistryError", "SignatureError", "dataset_of", "sha256_bytes", "valid_dataset"]
