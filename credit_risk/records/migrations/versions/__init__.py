"""The schema revisions, oldest first (`down_revision` chains them)."""
