"""How a load reports: ``Loading`` collects the problems and warnings found in one config
text, places each at its line, and words pydantic's errors in the file's own terms (key
paths as written, "did you mean" hints, values described without revealing secrets).

Both the cross checks and the loader report through it, so it sits below them both.
"""

from __future__ import annotations

import datetime
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

from pydantic import BaseModel

from monitor.config.model import Config
from monitor.config.problems import ConfigProblem, line_for, render_path
from monitor.config.sections import NOTIFIER_TYPES
from monitor.yamlsource import Path

SECRET_KEYS = frozenset({"token", "password", "webhook_url", "database"})


def kind_of(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary data (!!binary)"
    if isinstance(value, datetime.date):  # datetime too
        return f"the date {value.isoformat()}"
    return type(value).__name__


def value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class Loading:
    """Collects problems and warnings while one config text is validated."""

    source: str
    lines: Mapping[Path, int]
    expanded: Mapping[Path, tuple[str, ...]]
    hashtag_comments: Mapping[Path, str] = field(default_factory=dict)
    block_lines: Mapping[Path, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.problems: list[tuple[int, ConfigProblem]] = []
        self.warnings: list[str] = []
        self.unreadable: set[Path] = set()

    def problem(self, path: Path, message: str) -> ConfigProblem:
        return ConfigProblem(self.source, line_for(self.lines, path), render_path(path), message)

    def add(self, path: Path, message: str) -> None:
        if path not in self.unreadable:
            self.add_problem(self.problem(path, message))

    def add_problem(self, problem: ConfigProblem) -> None:
        self.problems.append((len(self.problems), problem))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(str(self.problem(path, message)))

    def sorted_problems(self) -> list[ConfigProblem]:
        # File order; problems without a line (about the whole file) come first.
        ordered = sorted(self.problems, key=lambda item: (item[1].line or 0, item[0]))
        return [problem for _, problem in ordered]

    def show(self, path: Path, value: object) -> str:
        """Describe a value for a message without ever revealing secrets."""
        names = self.expanded.get(path)
        if names:
            return "the value of " + ", ".join(f"${{{name}}}" for name in names)
        if path and path[-1] in SECRET_KEYS:
            return "a value that is not shown (secret)"
        if isinstance(value, str):
            return repr(value) if "'" not in value else f'"{value}"'
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return kind_of(value)

    # -- pydantic errors → our messages ---------------------------------------

    def add_pydantic(self, error: Any, data: Any) -> None:
        kind: str = error["type"]
        path, model = _resolve_loc(tuple(error["loc"]))
        context: dict[str, Any] = error.get("ctx") or {}
        value = value_at(data, path)
        got = f", got {self.show(path, value)}"
        if kind == "missing":
            self.add(path[:-1], f"missing required key '{path[-1]}'")
        elif kind == "extra_forbidden":
            allowed = _keys_of(model) if model is not None else []
            key = str(path[-1])
            hint = did_you_mean(key, allowed)
            if not hint and allowed:
                hint = f"; expected one of: {', '.join(allowed)}"
            self.add(path, f"unknown key '{key}'{hint}")
        elif kind == "union_tag_invalid":
            tag_path = (*path, "type")
            shown = self.show(tag_path, value_at(data, tag_path))
            self.add(
                tag_path,
                f"unknown notifier type {shown}: must be one of {', '.join(NOTIFIER_TYPES)}",
            )
        elif kind == "union_tag_not_found":
            self.add(path, f"missing required key 'type' (one of {', '.join(NOTIFIER_TYPES)})")
        elif kind == "wirewatch":
            self._add_custom(path, error["msg"], context, value, data)
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", str(context.get("expected", "")))
            self.add(path, f"must be one of {', '.join(choices)}{got}")
        elif kind == "string_type":
            # YAML reads 5, yes and 2024-01-01 as a number, true and a date.
            quote = isinstance(value, int | float | datetime.date)
            self.add(path, f"expected text{got}{' (put it in quotes)' if quote else ''}")
        elif kind in ("int_type", "int_parsing", "int_from_float"):
            self.add(path, f"expected a whole number{got}")
        elif kind in ("bool_type", "bool_parsing"):
            self.add(path, f"expected true or false{got}")
        elif kind == "list_type":
            brackets = " (write [a, b] for a list)" if isinstance(value, str) else ""
            self.add(path, f"expected a list{got}{brackets}")
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            self.add(path, f"expected a mapping{got}")
        elif kind == "greater_than_equal":
            self.add(path, f"must be at least {context.get('ge')}{got}")
        elif kind == "less_than_equal":
            self.add(path, f"must be at most {context.get('le')}{got}")
        elif kind in ("too_short", "string_too_short"):
            self.add(path, "must not be empty")
        else:  # pragma: no cover - a pydantic error type we have not worded yet
            self.add(path, str(error["msg"]))

    def _add_custom(
        self, path: Path, message: str, context: Mapping[str, Any], value: Any, data: Any
    ) -> None:
        if "key" in context and isinstance(value, dict) and context["key"] in value:
            path = (*path, context["key"])
            value = value[context["key"]]
        if "show_item" in context:
            item_path = (*path, context["show_item"])
            message += f", got {self.show(item_path, value_at(data, item_path))}"
            path = item_path
        elif context.get("show_value"):
            message += f", got {self.show(path, value)}"
        self.add(path, message)


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return tuple(_unwrap(arg) for arg in typing.get_args(annotation))
    return ()


def _resolve_loc(loc: tuple[Any, ...]) -> tuple[Path, type[BaseModel] | None]:
    """Turn a pydantic error location into our key path, and find the model holding its last key.

    Discriminated unions put the tag in the location (``notifiers.desk.slack.token``);
    the tag is not a key in the file, so it is dropped from the path.
    """
    path: list[str | int] = []
    annotation: Any = Config
    holder: type[BaseModel] | None = None
    for part in loc:
        annotation = _unwrap(annotation)
        members = [m for m in _union_members(annotation) if m is not type(None)]
        if members and all(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            chosen = next((m for m in members if part in _literal_tags(m)), None)
            if chosen is not None:
                annotation = chosen
                continue
        elif len(members) == 1:
            annotation = members[0]
        path.append(part)
        holder = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
        annotation = _child_annotation(annotation, part)
    return tuple(path), holder


def _literal_tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation) if field is not None else ()


def _child_annotation(annotation: Any, part: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]
