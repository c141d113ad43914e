"""jinja2 templates from templates/, each with a content hash for the manifest."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jinja2

from sao.errors import SaoError


def templates_dir() -> Path:
    """The bundled templates/ folder (wheel: sao/_data/templates; checkout: repo root)."""
    packaged = Path(__file__).resolve().parent / "_data" / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Strict environment: an undefined variable is an error, not an empty string."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def _path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() or path.parent != Path(".") else templates_dir() / name


class Template:
    """A loaded template: `render(**vars)` and `sha256` of its source."""

    def __init__(self, name: str) -> None:
        path = _path(name)
        if not path.is_file():
            raise SaoError(f"template not found: {path}")
        self.name = name
        self.source = path.read_text(encoding="utf-8")
        self.sha256 = hashlib.sha256(self.source.encode()).hexdigest()
        try:
            self._template = environment().from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise SaoError(f"template {name} line {exc.lineno}: {exc.message}") from None

    def render(self, **variables: object) -> str:
        """Render with the given variables; a missing one is a one-line SaoError."""
        try:
            return self._template.render(**variables).strip()
        except jinja2.UndefinedError as exc:
            raise SaoError(f"template {self.name}: {exc.message}") from None
