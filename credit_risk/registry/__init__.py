"""Model versions with signed manifests, crash-safe aliases, and the decision log."""
