"""The pages' Jinja templates (templates/ beside this file), autoescaped."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).with_name("templates")


def number(value: Any) -> Any:
    """A float to four decimals; anything else as it is."""
    return f"{value:.4f}" if isinstance(value, float) else value


@cache
def environment() -> jinja2.Environment:
    """The template environment: every value escaped, an unknown name an error."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["num"] = number
    return env


def render(name: str, **context: Any) -> HTMLResponse:
    """A template rendered as an HTML response."""
    return HTMLResponse(environment().get_template(name).render(**context))
