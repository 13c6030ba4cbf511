"""Records of what serving decided and what later happened: the decision log and outcomes.

- `decisions`: the decision log's interface, its typed record and the JSONL backend.
- `outcomes`: observed outcomes, their typed record, sources (CSV, SQL) and the JSONL store.
- `decisions_pg`, `group_commit`, `outcomes_pg`: the PostgreSQL backends.
- `jsonl`, `postgres`: the file and database plumbing both share.
- `backends`: which backend a setting names (the only module that knows them all).
"""
