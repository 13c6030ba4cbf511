"""The built-in datasets: their specs, vendored data and the synthetic data generator."""
