"""Plain-text tables for the CLI and task logs (no dependencies: the serving slice uses it)."""

from __future__ import annotations

from typing import Any


def text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A header, a rule, one line per row; floats to four decimals."""
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])
