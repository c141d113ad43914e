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
    """Where a template name points: a bundled name first, else a file path (relative to cwd)."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.parent != Path("."):
        return path
    bundled = templates_dir() / name
    return bundled if bundled.is_file() or not path.is_file() else path


def _one_line(text: str) -> str:
    """Collapse a message onto one line."""
    return " ".join(text.split())


class Template:
    """A loaded template: `render(**vars)` and `sha256` of its source.

    `name` is a bundled template (templates/<name>) or a path to a user's file; a bare file
    name that is not bundled is looked up in the current folder.
    """

    def __init__(self, name: str) -> None:
        path = _path(name)
        if not path.is_file():
            where = "" if path.parent != templates_dir() else " (not bundled, not in this folder)"
            raise SaoError(f"template not found: {name}{where}")
        self.name = name
        self.source = _read(path, name)
        self.sha256 = hashlib.sha256(self.source.encode()).hexdigest()
        try:
            self._template = environment().from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            message = _one_line(exc.message or "syntax error")
            raise SaoError(f"template {name} line {exc.lineno}: {message}") from None

    def render(self, **variables: object) -> str:
        """Render with the given variables; a missing one (or any error) is a one-line SaoError."""
        try:
            return self._template.render(**variables).strip()
        except jinja2.UndefinedError as exc:
            given = ", ".join(sorted(variables)) or "none"
            raise SaoError(
                f"template {self.name}: {_one_line(exc.message or '')} (variables: {given})"
            ) from None
        except Exception as exc:  # a user's template can fail in any way jinja2 evaluates
            raise SaoError(
                f"template {self.name} cannot be rendered: {type(exc).__name__}: "
                f"{_one_line(str(exc))}"
            ) from None


def _read(path: Path, name: str) -> str:
    """A template file's text; SaoError when it is not readable UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SaoError(f"template {name}: not UTF-8 text (byte {exc.start + 1})") from None
    except OSError as exc:
        raise SaoError(f"cannot read template {name}: {exc.strerror or exc}") from None
