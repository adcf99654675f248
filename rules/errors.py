"""Errors and warnings about watch rules.

Exception tree::

    ValueError
    ├── RuleError       one bad query: rule name, YAML line, column, what was expected
    └── RuleSetError    compile_rules found problems; ``.errors`` lists every RuleError

Warnings are values, not exceptions: a rule that can never match, or one that
matches nearly everything, is legal but almost certainly not what was meant.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


class RuleError(ValueError):
    """A query that cannot be parsed or compiled, pointing at the offending column."""

    def __init__(
        self,
        message: str,
        *,
        query: str,
        column: int,
        rule: str | None = None,
        line: int | None = None,
        empty_list: str | None = None,
    ) -> None:
        self.message = message
        self.query = query
        self.column = max(1, column)
        self.rule = rule
        self.line = line
        #: The list named by an "@name is empty" error: the config reports that list
        #: where it is written, and need not repeat it at every rule using it.
        self.empty_list = empty_list
        super().__init__(self.render())

    def for_rule(self, rule: str, line: int | None) -> RuleError:
        """The same error, now naming the rule it belongs to."""
        return RuleError(self.message, query=self.query, column=self.column, rule=rule, line=line,
                         empty_list=self.empty_list)

    def render(self) -> str:
        """Header, then the query line (around the column, when long) with a caret under it.

        >>> print(RuleError("expected a term after AND", query="CSTO AND", column=9,
        ...                 rule="x", line=12).render())
        rule 'x' (line 12): expected a term after AND
          CSTO AND
                   ^
        """
        where = []
        if self.rule is not None:
            where.append(f"rule {self.rule!r}")
        if self.line is not None:
            where.append(f"(line {self.line})")
        header = f"{' '.join(where)}: {self.message}" if where else self.message
        # A query may span several YAML lines: show the one holding the column.
        offset = self.column - 1
        line_start = self.query.rfind("\n", 0, offset) + 1
        line_end = self.query.find("\n", offset)
        if line_end == -1:
            line_end = len(self.query)
        shown = self.query[line_start:line_end].replace("\t", " ")
        before, after = shown[: offset - line_start], shown[offset - line_start :]
        if len(shown) > 2 * _MOST_CHARACTERS or _display_width(shown) > 2 * SHOWN_AROUND_CARET:
            # A line of thousands of characters (a pasted article) would print twice,
            # text and caret line, each wrapping over many screens.
            before, after = _last_columns(before), _first_columns(after)
        caret = " " * _display_width(before) + "^"
        return f"{header}\n  {before}{after}\n  {caret}"

    def __str__(self) -> str:
        return self.render()


#: Columns of a long query line shown on either side of the caret; a line that fits
#: in twice as many is shown whole.
SHOWN_AROUND_CARET = 60
# Accents and zero-width characters fill no column: a side also stops at this many
# characters, or a run of them would be shown whole however long.
_MOST_CHARACTERS = 4 * SHOWN_AROUND_CARET
_CUT = "…"


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _display_width(text: str) -> int:
    """Terminal columns ``text`` takes: the caret must line up under what the editor sees.

    A Han, kana or emoji character fills two columns, a combining accent or a
    zero-width character none, so counting characters drifts off the problem.
    """
    if text.isascii():
        return len(text)  # every ASCII character is one column here, controls included
    return sum(map(_char_width, text))


def _last_columns(text: str) -> str:
    """The end of ``text`` that fits in SHOWN_AROUND_CARET columns, after … if cut."""
    width, start = 0, len(text)
    stop = max(0, len(text) - _MOST_CHARACTERS)
    while start > stop and width + _char_width(text[start - 1]) <= SHOWN_AROUND_CARET:
        start -= 1
        width += _char_width(text[start])
    if start == 0:
        return text
    # Accents whose letter was cut off would sit on the ellipsis instead.
    while start < len(text) and _char_width(text[start]) == 0:
        start += 1
    return _CUT + text[start:]


def _first_columns(text: str) -> str:
    """The start of ``text`` that fits in SHOWN_AROUND_CARET columns, before … if cut."""
    width, end = 0, 0
    stop = min(len(text), _MOST_CHARACTERS)
    while end < stop and width + _char_width(text[end]) <= SHOWN_AROUND_CARET:
        width += _char_width(text[end])
        end += 1
    return text if end == len(text) else text[:end] + _CUT


class RuleSetError(ValueError):
    """compile_rules refused the rule set; ``errors`` holds every bad rule, in order."""

    def __init__(self, errors: list[RuleError],
                 warnings: tuple[RuleWarning, ...] = ()) -> None:
        self.errors = errors
        # The rules that did compile may still deserve a warning: an editor fixing
        # the errors should not meet those only on the next check.
        self.warnings = warnings
        count = len(errors)
        noun = "rule" if count == 1 else "rules"
        super().__init__(f"{count} invalid {noun}:\n" + "\n".join(e.render() for e in errors))


@dataclass(frozen=True, slots=True)
class RuleWarning:
    rule: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"rule {self.rule!r}" + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.message}"
