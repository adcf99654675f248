"""YAML text → plain Python data that remembers the line of every key.

PyYAML's ``yaml.safe_load`` forgets where values came from and silently keeps the last of
two equal keys. We compose the node graph instead (``yaml.compose`` with the safe loader)
and build the data ourselves, so that:

* every key path (``("feeds", 2, "url")``) maps to the 1-based line it was written on;
* a duplicate key is reported with both lines instead of being dropped;
* ``${VAR}`` and ``${VAR:-default}`` are expanded in string values (never in keys) from an
  environment mapping passed in by the caller; ``$${`` writes a literal ``${``;
* string values that received text from the environment are remembered, so that error
  messages never repeat them (they may be secrets).

Keys are taken as written (``on:`` stays the text ``"on"``, not YAML 1.1's ``True``).
Anchors, aliases and ``<<`` merge keys work. This module knows nothing of wirewatch's schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
# An alias-heavy document can expand exponentially ("billion laughs"); a config has no
# business being anywhere near this size.
_MAX_NODES = 200_000

# `$${` is the escape; `${...}` a reference; a lone `${` with no closing brace is malformed.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNSET = re.compile(r"environment variable ([A-Za-z_][A-Za-z0-9_]*) is not set ")


def _unset_message(name: str) -> str:
    return f"environment variable {name} is not set (set it, or write ${{{name}:-default}})"


def unset_variable(message: str) -> str | None:
    """The variable a problem message says is not set, or None for any other problem
    (for callers that can do without some variables)."""
    found = _UNSET.match(message)
    return found.group(1) if found else None


# The first comment on a line, when no space follows its "#".
_HASHTAG_COMMENT = re.compile(r"^.*?\s(#\S.*)$")


@dataclass(frozen=True)
class SourceProblem:
    """A problem found while reading the text, before any schema is applied."""

    line: int | None
    path: Path
    message: str


@dataclass(frozen=True)
class YamlDocument:
    """The data of one YAML document plus what is needed to point back into its text.

    ``data`` is None for an empty document. ``expanded`` maps the path of each string value
    that took text from the environment to the names of the variables it used.
    """

    data: Any
    lines: Mapping[Path, int]
    expanded: Mapping[Path, tuple[str, ...]]
    problems: tuple[SourceProblem, ...]
    #: Unquoted values followed on their line by a comment that reads like more of the
    #: value: ``query: CSTO AND #MeToo`` is the value "CSTO AND" and the comment "#MeToo".
    hashtag_comments: Mapping[Path, str] = field(default_factory=dict)
    #: For each literal block value (``query: |``), the line its text starts on: a
    #: problem at a column of the value is on that line plus the line breaks before it.
    block_lines: Mapping[Path, int] = field(default_factory=dict)


def read_yaml(text: str, *, environ: Mapping[str, str]) -> YamlDocument:
    """Parse one YAML document; syntax errors and expansion problems come back as problems."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        # libyaml composes ~10x faster (it bounds hot-reload time for big rule sets). Its
        # error wording differs, so on an error the text is parsed again by the Python
        # loader below: messages stay the same with or without libyaml.
        try:
            return _compose_quietly(fast, text, environ)
        except yaml.YAMLError:
            pass
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        return _failed(_reader_problem(text, exc))
    except yaml.YAMLError as exc:
        return _failed(SourceProblem(None, (), f"invalid YAML: {_first_line(str(exc))}"))
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return _failed(_syntax_problem(exc))
    except yaml.YAMLError as exc:
        return _failed(SourceProblem(None, (), f"invalid YAML: {_first_line(str(exc))}"))
    finally:
        loader.dispose()
    return _build(loader, root, environ, text)


def _compose_quietly(
    loader_class: type[yaml.SafeLoader], text: str, environ: Mapping[str, str]
) -> YamlDocument:
    """Compose with the given loader, letting a YAML error propagate."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    return _build(loader, root, environ, text)


def _build(
    loader: yaml.SafeLoader, root: yaml.Node | None, environ: Mapping[str, str], text: str
) -> YamlDocument:
    if root is None:
        return YamlDocument(None, {}, {}, ())
    builder = _Builder(loader, environ, text.splitlines())
    builder.lines[()] = root.start_mark.line + 1
    try:
        data = builder.build(root, ())
    except _TooLarge:
        return _failed(
            SourceProblem(None, (), f"the document expands to more than {_MAX_NODES} values")
        )
    return YamlDocument(data, builder.lines, builder.expanded, tuple(builder.problems),
                        builder.hashtag_comments, builder.block_lines)


def _failed(problem: SourceProblem) -> YamlDocument:
    return YamlDocument(None, {}, {}, (problem,))


def _syntax_problem(exc: yaml.MarkedYAMLError) -> SourceProblem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "syntax error"
    if exc.context and exc.problem and exc.problem.startswith("but "):
        # e.g. "expected a single document in the stream, but found another document"
        what = f"{exc.context}, {exc.problem}"
    if mark is None:
        return SourceProblem(None, (), f"invalid YAML: {what}")
    return SourceProblem(mark.line + 1, (), f"invalid YAML at column {mark.column + 1}: {what}")


def _reader_problem(text: str, exc: yaml.reader.ReaderError) -> SourceProblem:
    """A character YAML refuses (a control character pasted into a query, a NUL): its
    line and column, as a syntax error has. ReaderError carries only an offset, and in a
    long rule file a message without a line leaves the editor searching for something
    invisible."""
    position = int(exc.position)
    breaks = list(_LINE_BREAK.finditer(text, 0, position))
    line_start = breaks[-1].end() if breaks else 0
    what = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    return SourceProblem(
        len(breaks) + 1, (), f"invalid YAML at column {position - line_start + 1}: {what}"
    )


# What YAML counts as a line break, so lines are numbered as in its other errors.
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unreadable text"


class _TooLarge(Exception):
    pass


@dataclass
class _Builder:
    loader: yaml.SafeLoader
    environ: Mapping[str, str]
    text_lines: list[str]
    lines: dict[Path, int] = field(default_factory=dict)
    expanded: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    problems: list[SourceProblem] = field(default_factory=list)
    hashtag_comments: dict[Path, str] = field(default_factory=dict)
    block_lines: dict[Path, int] = field(default_factory=dict)
    _visited: int = 0
    _open: set[int] = field(default_factory=set)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._visited += 1
        if self._visited > _MAX_NODES:
            raise _TooLarge
        if id(node) in self._open:
            self._problem(node, path, "an alias refers to a node that contains it")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node, path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._problem(
                    key_node,
                    (*path, key),
                    f"duplicate key '{key}' (first written on line {first_line[key]})",
                )
                continue
            first_line[key] = line
            self.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        for merge_node in merges:
            self._merge(merge_node, path, result)
        return result

    def _merge(self, node: yaml.Node, path: Path, into: dict[str, Any]) -> None:
        """`<<: *defaults` (or a list of them): keys written explicitly win, as YAML specifies."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._problem(source, path, "'<<' must refer to a mapping")
                continue
            # Build the merged mapping on the side, so that its lines do not overwrite
            # those of keys written explicitly at this level.
            outer_lines, outer_expanded = self.lines, self.expanded
            self.lines, self.expanded = {}, {}
            try:
                merged = self._mapping(source, path)
                side_lines, side_expanded = self.lines, self.expanded
            finally:
                self.lines, self.expanded = outer_lines, outer_expanded
            fresh = {key for key in merged if key not in into}
            for key in fresh:
                into[key] = merged[key]
            depth = len(path)
            for side, outer in ((side_lines, self.lines), (side_expanded, self.expanded)):
                for sub_path, value in side.items():
                    if len(sub_path) > depth and sub_path[depth] in fresh:
                        outer[sub_path] = value  # type: ignore[assignment]

    def _sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        items: list[Any] = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = item.start_mark.line + 1
            items.append(self.build(item, (*path, index)))
        return items

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._problem(node, path, exc.problem or "cannot read this value")
            return None
        if isinstance(value, bytes):
            # No setting takes bytes. Left to pydantic, a !!binary query was decoded into
            # the config's rule while the rule compiler, which reads the raw data, skipped
            # it: a rule that loaded cleanly and never fired.
            self._problem(node, path, "binary data (!!binary) is not accepted: write the "
                                      "value without the !!binary tag")
            return None
        # Plain (unquoted) style: None from the Python loader, "" from libyaml.
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode) and not node.style:
            self._note_hashtag_comment(node, path)
        if isinstance(node, yaml.ScalarNode) and node.style == "|":
            # The node starts at its "|" header; the text, on the next line.
            self.block_lines[path] = node.start_mark.line + 2
        if node.tag == _STR_TAG and isinstance(value, str) and "$" in value:
            return self._expand(value, node, path)
        return value

    def _note_hashtag_comment(self, node: yaml.ScalarNode, path: Path) -> None:
        """Remember a comment like ``#MeToo`` right after a one-line unquoted value.

        An unquoted value cannot hold a space followed by "#" (that starts a comment),
        so the first such pair on the value's line is where its comment begins. A
        comment written as one usually has a space after the "#"; one that does not
        reads like a hashtag the writer meant to be part of the value.
        """
        line = node.end_mark.line
        if node.start_mark.line != line or line >= len(self.text_lines):
            return
        found = _HASHTAG_COMMENT.search(self.text_lines[line])
        if found is not None:
            self.hashtag_comments[path] = found.group(1).rstrip()

    def _expand(self, text: str, node: yaml.Node, path: Path) -> str:
        used: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$${":
                return "${"
            inner = match.group(1)
            if inner is None:
                self._problem(node, path, "'${' is not closed; write $${ for a literal ${")
                return whole
            name, has_default, default = inner.partition(":-")
            if not _VARIABLE_NAME.fullmatch(name) or "${" in default:
                self._problem(
                    node,
                    path,
                    f"cannot read '{whole}': write ${{NAME}} or ${{NAME:-default}}, "
                    "or $${ for a literal ${",
                )
                return whole
            value = self.environ.get(name)
            # Like the shell's ${NAME:-default}: the default also replaces an empty value.
            if has_default and not value:
                return default
            if value is None:
                self._problem(node, path, _unset_message(name))
                return ""
            used.append(name)
            return value

        result = _REFERENCE.sub(substitute, text)
        if used:
            self.expanded[path] = tuple(dict.fromkeys(used))
        return result

    def _problem(self, node: yaml.Node, path: Path, message: str) -> None:
        self.problems.append(SourceProblem(node.start_mark.line + 1, path, message))
