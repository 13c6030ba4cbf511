"""Dataset specs, the safe expression language and the application fields derived from a spec."""
