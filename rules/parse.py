"""The watch-rule query language: text -> syntax tree, errors pointing at the column.

Grammar (precedence NEAR > NOT > AND > OR; docs/rules.md has the examples)::

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary (["AND"] unary)*          adjacent terms mean AND
    unary    := ("NOT" | "-") unary | near
    near     := primary [("NEAR/n" | "ONEAR/n") primary]
    primary  := modifier* ( "(" or_expr ")" | word | "phrase" | @list )
    modifier := title: | summary: | content: | author: | category: | feed: | url: | case:

Operators are written in capitals; ``and``, ``or``, ``not`` and ``near`` in lower
case are ordinary words.  Operators and the marks around terms are read as Unicode
NFKC reads them (a CJK input method types ``ＡＮＤ``, ``ＮＥＡＲ／５``, ``（``), while the
terms themselves keep their text.  There is deliberately no regex: wildcards and
proximity cover what editors need, and nothing a rule says can make matching
take more than time proportional to the item.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from rules.errors import RuleError
from rules.text import QUERY_WILDCARDS, exact, fold, has_cjk, query_word_pattern, word_pattern

TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
TOKEN_FIELDS: tuple[str, ...] = ("title", "summary", "content", "author", "category")
FIELDS: tuple[str, ...] = (*TOKEN_FIELDS, "feed", "url")
MIN_WILDCARD_PREFIX = 3
MAX_NEAR = 1000
MAX_NESTING = 50  # parentheses and field prefixes, one inside another


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True, slots=True)
class Seq:
    """A word, a phrase or a wildcard: consecutive tokens in one of ``fields``.

    Each token is folded text, or, when ``exact`` (``case:``), text as written.
    A token holding ``*`` or ``?`` is a wildcard pattern.
    """

    tokens: tuple[str, ...]
    fields: tuple[str, ...] = TEXT_FIELDS
    exact: bool = False
    text: str = field(default="", compare=False)
    phrase: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Url:
    """A substring of the item's link, compared case-insensitively."""

    value: str


@dataclass(frozen=True, slots=True)
class Feed:
    """The feed's name or one of its tags, compared as a whole, folded."""

    value: str


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """``left`` and ``right`` within ``distance`` words; ``ordered``: left comes first."""

    left: Node
    right: Node
    distance: int
    ordered: bool = False


Node = Seq | Url | Feed | And | Or | Not | Near
Leaf = Seq | Url | Feed


def is_wildcard(token: str) -> bool:
    return "*" in token or "?" in token


def feed_value(text: str) -> str:
    """Feed names and tags compare by their folded words: ``BBC-World`` = ``bbc world``."""
    return " ".join(fold(t) for t in word_pattern(text).findall(text))


# ---------------------------------------------------------------------- lexer


class _Tok(NamedTuple):
    """One lexical token (a named tuple: the lexer makes a few per query, fast)."""

    kind: str  # ( ) WORD PHRASE AND OR NOT MINUS NEAR FIELD LIST EOF
    text: str
    column: int  # 1-based
    distance: int = 0
    ordered: bool = False


_OPEN_QUOTES = '"\u201c\u201e'
_CLOSE_QUOTES = '"\u201d\u201c'
_RUN = re.compile(r'[^\s()"\u201c\u201d\u201e]+')
_RUN_CHAR = re.compile(r'[^\s()"\u201c\u201d\u201e]')
_MODIFIER = re.compile(r"([A-Za-z]+):")
_NEAR = re.compile(r"(O?NEAR)(?:/(\d*))?")
_NEAR_LIKE = re.compile(r"O?NEAR/")
_MODIFIERS = (*FIELDS, "case")
_RAW_VALUE_FIELDS = ("url", "feed")


_OPERATOR_WORDS = frozenset(("AND", "OR", "NOT", "NEAR", "ONEAR"))


@lru_cache(maxsize=4096)
def _syntax_char(ch: str) -> str:
    """The ASCII character ``ch`` is under NFKC, or ``ch`` itself when it is not one.

    Only one-to-one mappings count, so the text read for syntax keeps the query's
    length and every column still points into the query as written; a character
    NFKC expands (``⑴`` is ``(1)``) is left alone rather than split into syntax.
    """
    form = unicodedata.normalize("NFKC", ch)
    return form if len(form) == 1 and form.isascii() else ch


def _syntax_view(text: str) -> str:
    """``text`` as the lexer reads operators in it: ``ＡＮＤ（ａ`` is ``AND(a``.

    An editor typing with a CJK input method gets full-width forms; read as written,
    ``ＡＮＤ`` would quietly be searched as the word "and".
    """
    return text if text.isascii() else "".join(map(_syntax_char, text))


def list_name_problem(name: str) -> str | None:
    """Why no query could name the list ``name`` after an ``@``, or None if one can.

    A query reads a list name up to the first space, parenthesis or quote (or its
    full-width form): a list named "my list" could be defined but never used.
    """
    if not name.strip():
        return "a list needs a name"
    view = _syntax_view(name)
    run = _RUN.match(view)
    if run is not None and run.end() == len(name):
        return None
    read = name[: run.end()] if run is not None else ""
    suggestion = "".join(ch if _RUN_CHAR.match(v) else "_" for ch, v in zip(name, view,
                                                                          strict=True))
    return (f"a query could never name this list: a list name ends at a space, "
            f"parenthesis or quote, so @{name} reads as @{read}; rename it, e.g. "
            f"{suggestion.strip('_') or 'my_list'}")


def _lex(query: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    # Operators, brackets, quotes and prefixes are recognised in ``view``; the text of
    # words and phrases is taken from ``query`` as written (it is folded with NFKC
    # anyway, and url: values are compared as written).
    view = _syntax_view(query)
    i = 0
    n = len(query)
    raw_next = False  # after url: / feed: the value is read as it stands
    while i < n:
        ch = view[i]
        if ch.isspace():
            i += 1
            raw_next = False
            continue
        col = i + 1
        if ch in "()":
            tokens.append(_Tok(ch, ch, col))
            i += 1
            raw_next = False
            continue
        if ch in _OPEN_QUOTES:
            end = next((j for j in range(i + 1, n) if view[j] in _CLOSE_QUOTES), -1)
            if end == -1:
                raise RuleError(
                    f"unterminated phrase opened at column {col}", query=query, column=col
                )
            tokens.append(_Tok("PHRASE", query[i + 1 : end], col))
            i = end + 1
            raw_next = False
            continue
        if not raw_next:
            # Prefixes of a run (-term, title:term) are read where they stand: slicing
            # the run again after each one made "----...x" or "title:title:..." quadratic.
            if ch == "-" and _RUN_CHAR.match(view, i + 1):
                tokens.append(_Tok("MINUS", "-", col))
                i += 1
                continue
            modifier = _MODIFIER.match(view, i)
            if modifier:
                name = modifier.group(1).lower()
                if name not in _MODIFIERS:
                    raise RuleError(
                        f"unknown field {query[i : modifier.end(1)]!r}; fields are "
                        + ", ".join(f"{f}:" for f in _MODIFIERS)
                        + ' (put text with a colon in "quotes")',
                        query=query,
                        column=col,
                    )
                tokens.append(_Tok("FIELD", name, col))
                i = modifier.end()
                raw_next = name in _RAW_VALUE_FIELDS
                continue
        run_match = _RUN.match(view, i)
        j = run_match.end() if run_match else i + 1
        run = view[i:j]
        if raw_next or (run.isalnum() and run not in _OPERATOR_WORDS):
            # A plain word (most of every query): none of the checks below apply.
            tokens.append(_Tok("WORD", query[i:j], col))
            i = j
            raw_next = False
            continue
        if run == "-" and j < n and view[j] in "(" + _OPEN_QUOTES:
            tokens.append(_Tok("MINUS", "-", col))  # -"phrase", -(group)
            i = j
            continue
        if run == "-":
            raise RuleError(
                "a lone '-' excludes nothing; write -term (no space) or NOT term",
                query=query,
                column=col,
            )
        if run[0] == "@":
            name = query[i + 1 : j]
            if not name:
                raise RuleError("expected a list name after @", query=query, column=col + 1)
            tokens.append(_Tok("LIST", name, col))
            i = j
            continue
        if run in ("AND", "OR", "NOT"):
            tokens.append(_Tok(run, run, col))
            i = j
            continue
        near = _NEAR.fullmatch(run)
        if near:
            if not near.group(2):
                raise RuleError(
                    f"{near.group(1)} needs a distance in words, like {near.group(1)}/5",
                    query=query,
                    column=col,
                )
            # int() refuses more than 4,300 digits: any number that long is out of range.
            digits = near.group(2).lstrip("0") or "0"
            distance = int(digits) if len(digits) <= len(str(MAX_NEAR)) else MAX_NEAR + 1
            if not 1 <= distance <= MAX_NEAR:
                raise RuleError(
                    f"{near.group(1)} distance must be between 1 and {MAX_NEAR}",
                    query=query,
                    column=col,
                )
            ordered = near.group(1) == "ONEAR"
            tokens.append(_Tok("NEAR", run, col, distance=distance, ordered=ordered))
            i = j
            continue
        if _NEAR_LIKE.match(run):
            # NEAR/5x or NEAR/-1 is a mistyped operator; read as words it would
            # quietly search for the text "near 5x".
            operator = run.split("/")[0]
            raise RuleError(
                f"{operator} needs a distance in words, like {operator}/5",
                query=query,
                column=col,
            )
        tokens.append(_Tok("WORD", query[i:j], col))
        i = j
    tokens.append(_Tok("EOF", "", n + 1))
    return tokens


# --------------------------------------------------------------------- parser

_STARTS_OPERAND = frozenset({"(", "WORD", "PHRASE", "NOT", "MINUS", "FIELD", "LIST"})


@dataclass(frozen=True, slots=True)
class _Scope:
    fields: tuple[str, ...] = TEXT_FIELDS
    field_name: str | None = None
    exact: bool = False


class _Parser:
    def __init__(
        self, query: str, lists: Mapping[str, Sequence[str]], terms: TermCache | None = None
    ) -> None:
        self.query = query
        self.lists = lists
        self.terms = terms
        self.tokens = _lex(query)
        self.pos = 0

    # -- helpers
    def peek(self) -> _Tok:
        return self.tokens[self.pos]

    def advance(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def error(self, message: str, column: int) -> RuleError:
        return RuleError(message, query=self.query, column=column)

    def expected_after(self, tok: _Tok) -> RuleError:
        nxt = self.peek()
        if tok.kind == "FIELD":
            what = f"{tok.text}:"
        elif tok.kind == "MINUS":
            what = "-"
        elif tok.kind == "(":
            what = "("
        else:
            what = tok.text
        return self.error(f"expected a term after {what}", nxt.column)

    # -- grammar
    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise self.error("empty query", 1)
        node = self.or_expr(depth=0)
        tok = self.peek()
        if tok.kind == ")":
            raise self.error("unexpected ')' with no matching '('", tok.column)
        if tok.kind != "EOF":  # pragma: no cover - every other token is consumed above
            raise self.error(f"unexpected {tok.text!r}", tok.column)
        return node

    def or_expr(self, depth: int) -> Node:
        children = [self.and_expr(depth)]
        while self.peek().kind == "OR":
            op = self.advance()
            if self.peek().kind not in _STARTS_OPERAND:
                raise self.expected_after(op)
            children.append(self.and_expr(depth))
        return _flatten(Or, children)

    def and_expr(self, depth: int) -> Node:
        children = [self.unary(depth)]
        while True:
            tok = self.peek()
            if tok.kind == "AND":
                self.advance()
                if self.peek().kind not in _STARTS_OPERAND:
                    raise self.expected_after(tok)
            elif tok.kind not in _STARTS_OPERAND:
                break
            children.append(self.unary(depth))
        return _flatten(And, children)

    def unary(self, depth: int) -> Node:
        # A loop, not recursion: a run of NOTs must not exhaust the stack.
        negated = False
        while (tok := self.peek()).kind in ("NOT", "MINUS"):
            self.advance()
            if self.peek().kind not in _STARTS_OPERAND:
                raise self.expected_after(tok)
            negated = not negated
        child = self.near(depth)
        if not negated:
            return child
        return child.child if isinstance(child, Not) else Not(child)

    def near(self, depth: int) -> Node:
        left = self.primary(depth, _Scope())
        tok = self.peek()
        if tok.kind != "NEAR":
            return left
        self.advance()
        if self.peek().kind in ("NOT", "MINUS"):
            # There is a term after NEAR, so "expected a term" would mislead.
            raise self.error(
                f"{tok.text.split('/')[0]} works on terms, phrases, wildcards "
                "or OR-groups of them, not on NOT",
                self.peek().column,
            )
        if self.peek().kind not in _STARTS_OPERAND:
            raise self.expected_after(tok)
        right = self.primary(depth, _Scope())
        for operand in (left, right):
            if not _is_positional(operand):
                raise self.error(
                    f"{tok.text.split('/')[0]} works on terms, phrases, wildcards "
                    "or OR-groups of them",
                    tok.column,
                )
        if self.peek().kind == "NEAR":
            raise self.error(
                "chained NEAR is ambiguous; group it: (a NEAR/5 b) AND (b NEAR/5 c)",
                self.peek().column,
            )
        return Near(left, right, tok.distance, tok.ordered)

    def primary(self, depth: int, scope: _Scope) -> Node:
        tok = self.advance()
        if depth > MAX_NESTING:
            # Far beyond any real query, and each level costs stack frames here and
            # in the compiler: refuse it rather than crash with a RecursionError.
            raise self.error(f"nested more than {MAX_NESTING} levels deep", tok.column)
        if tok.kind == "FIELD":
            nxt = self.peek()
            adjacent = nxt.column == tok.column + len(tok.text) + 1
            if nxt.kind not in {"(", "WORD", "PHRASE", "LIST", "FIELD"} or not adjacent:
                hint = "" if adjacent or nxt.kind == "EOF" else " (no space between)"
                raise self.error(
                    f"expected a term after {tok.text}:{hint}",
                    tok.column + len(tok.text) + 1,
                )
            if tok.text == "case":
                return self.primary(
                    depth + 1, _Scope(scope.fields, scope.field_name, exact=True)
                )
            return self.primary(depth + 1, _Scope((tok.text,), tok.text, scope.exact))
        if tok.kind == "(":
            nxt = self.peek()
            if nxt.kind == ")":
                raise self.error("empty parentheses", nxt.column)
            if nxt.kind in ("AND", "OR", "NEAR"):
                # As at the start of the query: the operator lacks its left side.
                raise self.error(f"expected a term before {nxt.text}", nxt.column)
            if nxt.kind not in _STARTS_OPERAND:
                raise self.expected_after(tok)
            inner = self.or_expr(depth + 1)
            closing = self.peek()
            if closing.kind != ")":
                raise self.error(
                    f"unbalanced parenthesis opened at column {tok.column}", closing.column
                )
            self.advance()
            return _apply_scope(inner, scope) if scope != _Scope() else inner
        if tok.kind == "WORD":
            return self.term(tok.text, tok.column, scope, phrase=False)
        if tok.kind == "PHRASE":
            return self.term(tok.text, tok.column + 1, scope, phrase=True)
        if tok.kind == "LIST":
            return self.list_ref(tok, scope)
        if tok.kind == ")" and depth == 0:
            raise self.error("unexpected ')' with no matching '('", tok.column)
        previous = self.tokens[self.pos - 2] if self.pos >= 2 else None
        if previous is not None and previous.kind not in ("(",):
            self.pos -= 1
            raise self.expected_after(previous)
        if tok.kind == "EOF":
            raise self.error("expected a term", tok.column)
        raise self.error(f"expected a term before {tok.text}", tok.column)

    def term(self, text: str, column: int, scope: _Scope, *, phrase: bool) -> Node:
        return build_term(
            self.query, text, column, scope.field_name, scope.exact, phrase=phrase, cache=self.terms
        )

    def list_ref(self, tok: _Tok, scope: _Scope) -> Node:
        entries = self.lists.get(tok.text)
        if entries is None:
            # ＠ｃｓｔｏ names @csto, as ＡＮＤ is AND; a name defined as written wins.
            entries = self.lists.get(_syntax_view(tok.text))
        if entries is None:
            known = ", ".join(f"@{name}" for name in sorted(self.lists)) or "none are defined"
            raise self.error(f"unknown list @{tok.text} (lists: {known})", tok.column)
        if isinstance(entries, str) or not entries:
            raise RuleError(f"list @{tok.text} is empty", query=self.query, column=tok.column,
                            empty_list=tok.text)
        alternatives: list[Node] = []
        for entry in entries:
            try:
                alternatives.append(
                    parse_list_entry(
                        str(entry),
                        field_name=scope.field_name,
                        exact_case=scope.exact,
                        term_cache=self.terms,
                    )
                )
            except RuleError as exc:
                raise self.error(
                    f"in list @{tok.text}, entry {entry!r}: {exc.message}", tok.column
                ) from None
        return _flatten(Or, alternatives)


def _flatten(kind: type[And] | type[Or], children: list[Node]) -> Node:
    if len(children) == 1:
        return children[0]  # already flat: it was built here
    flat: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            flat.extend(child.children)
        else:
            flat.append(child)
    unique = list(dict.fromkeys(flat))  # `a OR a` is `a`
    if len(unique) == 1:
        return unique[0]
    return kind(tuple(unique))


def _is_positional(node: Node) -> bool:
    if isinstance(node, Seq):
        return True
    if isinstance(node, Or):
        return all(_is_positional(c) for c in node.children)
    return False


def _apply_scope(node: Node, scope: _Scope) -> Node:
    """Push ``title:(...)`` / ``case:(...)`` down to the leaves.

    An explicit field on an inner term wins over the group's, the way a nested
    declaration shadows an outer one.
    """
    if isinstance(node, Seq):
        explicit = node.fields != TEXT_FIELDS
        field_name = node.fields[0] if explicit else scope.field_name
        if field_name == (node.fields[0] if explicit else None) and node.exact >= scope.exact:
            return node
        # Re-read the term under the group's scope; it parsed once already, so it is valid.
        return build_term(
            node.text,
            node.text,
            1,
            field_name,
            node.exact or scope.exact,
            phrase=node.phrase,
        )
    if isinstance(node, And | Or):
        return type(node)(tuple(_apply_scope(c, scope) for c in node.children))
    if isinstance(node, Not):
        return Not(_apply_scope(node.child, scope))
    if isinstance(node, Near):
        return Near(
            _apply_scope(node.left, scope),
            _apply_scope(node.right, scope),
            node.distance,
            node.ordered,
        )
    return node


def _leaf_for_value(text: str, field_name: str) -> Leaf:
    if field_name == "url":
        return Url(text.casefold())
    return Feed(feed_value(text))


def build_term(
    query: str,
    text: str,
    column: int,
    field_name: str | None,
    exact_case: bool,
    *,
    phrase: bool,
    cache: TermCache | None = None,
) -> Node:
    """One word or phrase from the query as a leaf; ``column`` is where ``text`` starts.

    The same term recurs across a rule set (names, lists): with a ``cache`` (one
    per compiled rule set) a valid term's leaf is remembered by its text and scope,
    so it is read once.  ``query`` and ``column`` only place error messages, and
    an invalid term is never remembered.
    """
    if cache is None:
        return _build_term(query, text, column, field_name, exact_case, phrase=phrase)
    key = (text, field_name, exact_case, phrase)
    known = cache.get(key)
    if known is None:
        known = cache[key] = _build_term(query, text, column, field_name, exact_case, phrase=phrase)
    return known


TermCache = dict[tuple[str, str | None, bool, bool], Node]
# A plain word of ASCII letters and digits needs no tokenizer, folding or wildcard checks.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9]+")


def _build_term(
    query: str,
    text: str,
    column: int,
    field_name: str | None,
    exact_case: bool,
    *,
    phrase: bool,
) -> Node:
    if field_name not in _RAW_VALUE_FIELDS and _PLAIN_WORD.fullmatch(text):
        token = text if exact_case else text.lower()
        fields = (field_name,) if field_name is not None else TEXT_FIELDS
        return Seq((token,), fields, exact_case, text, phrase)
    if field_name in _RAW_VALUE_FIELDS:
        leaf = _leaf_for_value(text, field_name)
        if not (leaf.value if isinstance(leaf, Url | Feed) else True):
            raise RuleError(f"empty {field_name}: value", query=query, column=column)
        return leaf
    fields = (field_name,) if field_name is not None else TEXT_FIELDS
    # Inside quotes `?` is punctuation ("who is he?"); a trailing `*` still widens a word.
    searched = text.replace("?", " ") if phrase else text
    tokens: list[str] = []
    for m in query_word_pattern(searched).finditer(searched):
        raw = m.group()
        cut = min((raw.find(w) for w in QUERY_WILDCARDS if w in raw), default=-1)
        if cut == 0 and m.start() > 0 and has_cjk(searched[m.start() - 1]):
            raise RuleError(
                "wildcards work on words of alphabetic scripts; Chinese and Japanese "
                "characters match as written",
                query=query,
                column=column + m.start(),
            )
        convert = exact if exact_case else fold
        # Letters as compared, not code points: a decomposed "e\u0301t*" is two
        # letters like "ét*", and "ﬁn*" is the three letters of "fin*".
        if cut != -1 and len(convert(raw[:cut])) < MIN_WILDCARD_PREFIX:
            raise RuleError(
                f"wildcard needs at least {MIN_WILDCARD_PREFIX} letters before {raw[cut]}",
                query=query,
                column=column + m.start() + cut,
            )
        if cut == -1:
            token = convert(raw)
            if not token:
                continue
        else:
            token = "".join(
                part if part in QUERY_WILDCARDS else convert(part)
                for part in re.split(r"([*?])", raw)
            )
        tokens.append(token)
    if not tokens:
        what = "phrase" if phrase else f"{text!r}"
        raise RuleError(
            "empty phrase"
            if phrase and not text.strip()
            else f"{what} has no letters or digits to search for",
            query=query,
            column=column - 1 if phrase else column,
        )
    return Seq(tuple(tokens), fields, exact_case, text, phrase)


def parse_list_entry(
    entry: str,
    *,
    field_name: str | None = None,
    exact_case: bool = False,
    term_cache: TermCache | None = None,
) -> Node:
    """One entry of a ``lists:`` list as a leaf: a word, or a phrase when it has a space.

    Raises RuleError with the column within the entry, so a config check can
    point at a bad entry where it is written, whether or not a rule uses its list.
    """
    return build_term(
        entry,
        entry,
        1,
        field_name,
        exact_case,
        phrase=any(c.isspace() for c in entry),
        cache=term_cache,
    )


def parse_query(
    query: str,
    *,
    lists: Mapping[str, Sequence[str]] | None = None,
    term_cache: TermCache | None = None,
) -> Node:
    """Parse one query into its syntax tree; raises RuleError pointing at the column.

    ``term_cache`` (an empty dict shared by the queries of one rule set) lets
    recurring terms be read once.
    """
    return _Parser(query, lists or {}, term_cache).parse()
