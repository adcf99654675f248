"""What is wrong with a config file: ``ConfigProblem``, one problem at the place it is
written, and ``ConfigError``, all of them.

Models, checks and the loader all end in these, so this module imports nothing else of
the package. ``line_for`` and ``render_path`` give a key path such as
``("feeds", 2, "url")`` the line it was written on and its printed form ``feeds[2].url``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.yamlsource import Path


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, pointing at where it is written."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is not valid; ``problems`` lists every problem, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem], warnings: Iterable[str] = ()) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        # Warnings found beside the problems (a rule that can never match), so an editor
        # fixing the problems meets them now rather than on the next check.
        self.warnings: tuple[str, ...] = tuple(warnings)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def line_for(lines: Mapping[Path, int], path: Path) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def render_path(path: Path) -> str:
    rendered = ""
    for part in path:
        if isinstance(part, int):
            rendered += f"[{part}]"
            continue
        # An empty key would print as nothing at all: "lists.[0]".
        key = part if part.strip() else f'"{part}"'
        rendered += f".{key}" if rendered else key
    return rendered
