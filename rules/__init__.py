"""The watch-rule language: parse editors' queries, match items, explain hits.

Public API (everything else in this package is internal)::

    spec = RuleSpec(name="csto", query="CSTO AND withdraw*", line=12)
    ruleset = compile_rules([spec], lists={"csto": ["CSTO", "ОДКБ"]})  # RuleSetError if bad
    hits = ruleset.match(Document(title=..., content=...))            # list[Hit], rule order

The language is described operator by operator in docs/rules.md.  This package
imports only the standard library.
"""

from __future__ import annotations

from rules.document import Document
from rules.errors import RuleError, RuleSetError, RuleWarning
from rules.hits import Hit, MatchedTerm, Snippet
from rules.parse import Node, list_name_problem, parse_list_entry, parse_query
from rules.ruleset import RuleSet, RuleSpec, compile_rules

__all__ = [
    "Document",
    "Hit",
    "MatchedTerm",
    "Node",
    "RuleError",
    "RuleSet",
    "RuleSetError",
    "RuleSpec",
    "RuleWarning",
    "Snippet",
    "compile_rules",
    "list_name_problem",
    "parse_list_entry",
    "parse_query",
]
