"""Checks that span sections of config.yaml: unique names, references from rules to feeds,
tags and notifiers, interval bounds, ``feed_lease`` against ``defaults.timeout``, empty
lists, SMTP passwords sent in clear, and the compilation of every rule query.

They read the raw data rather than the validated models, so that they still report when
some other part failed validation: a config's problems all come out in one go.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from monitor.config.model import CONSOLE_NOTIFIER
from monitor.config.problems import ConfigProblem, render_path
from monitor.config.reporting import Loading, did_you_mean, value_at
from monitor.config.sections import TAG_PREFIX, Defaults, FeedConfig
from monitor.durations import DurationError, format_duration, parse_duration
from monitor.yamlsource import Path
from rules import (
    RuleError,
    RuleSet,
    RuleSetError,
    RuleSpec,
    RuleWarning,
    compile_rules,
    list_name_problem,
    parse_list_entry,
)


@dataclass
class CrossChecks:
    """Checks that span sections; they run on the raw data so that they report even when
    some other part failed validation (every problem in one go)."""

    loading: Loading
    data: dict[str, Any]

    def run(self) -> None:
        feeds = list(self._entries("feeds"))
        rules_ = list(self._entries("rules"))
        self._check_unique(feeds, "feed")
        self._check_unique(rules_, "rule")
        self._check_intervals(feeds)
        self._check_feed_lease()
        notifiers = self._notifier_names()
        tags = {tag for _, feed in feeds for tag in _strings(feed.get("tags"))}
        feed_names = [name for _, feed in feeds if isinstance(name := feed.get("name"), str)]
        for index, rule in rules_:
            for position, ref in _indexed_strings(rule.get("feeds")):
                self._check_feed_ref(("rules", index, "feeds", position), ref, feed_names, tags)
            for position, name in _indexed_strings(rule.get("notify")):
                self._check_notifier_ref(("rules", index, "notify", position), name, notifiers)
            self._check_query_comment(index, rule)
        ops = self.data.get("ops_notify")
        if isinstance(ops, str):
            self._check_notifier_ref(("ops_notify",), ops, notifiers)
        self._check_lists()
        self._check_email_security()

    def _check_query_comment(self, index: int, rule: Mapping[str, Any]) -> None:
        """Warn when YAML cut an unquoted query at a hashtag: ``query: CSTO AND #MeToo``
        searches "CSTO AND" (an error) or, worse, ``query: CSTO #MeToo`` just "CSTO"."""
        path = ("rules", index, "query")
        comment = self.loading.hashtag_comments.get(path)
        query = rule.get("query")
        if comment is None or not isinstance(query, str):
            return
        name = rule.get("name")
        label = f"rule '{name}': " if isinstance(name, str) else ""
        self.loading.warn(path, f"{label}the query stops before {comment!r}: in YAML a '#' "
                                f"after a space starts a comment; quote the whole query to "
                                f"search for it (query: \"{query} {comment}\")")

    def _entries(self, section: str) -> Iterator[tuple[int, dict[str, Any]]]:
        items = self.data.get(section)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    yield index, item

    def _notifier_names(self) -> list[str]:
        configured = self.data.get("notifiers")
        if isinstance(configured, dict) and configured:
            return list(configured)
        return [CONSOLE_NOTIFIER]

    def _check_unique(self, entries: list[tuple[int, dict[str, Any]]], kind: str) -> None:
        first: dict[str, int] = {}
        for index, entry in entries:
            name = entry.get("name")
            if not isinstance(name, str):
                continue
            path = (f"{kind}s", index, "name")
            if name in first:
                first_line = self.loading.lines.get((f"{kind}s", first[name], "name"))
                self.loading.add(
                    path,
                    f"duplicate {kind} name {self.loading.show(path, name)} "
                    f"(first used on line {first_line})",
                )
            else:
                first[name] = index

    def _check_intervals(self, feeds: list[tuple[int, dict[str, Any]]]) -> None:
        """min_interval ≤ max_interval (an error); an interval outside them (a warning).

        A feed that sets none of the three follows the defaults, checked once for all.
        """
        defaults = _quietly(Defaults, self.data.get("defaults") or {}) or Defaults()
        self._check_bounds(
            ("defaults",),
            defaults.interval,
            defaults.min_interval,
            defaults.max_interval,
            interval_path=("defaults", "interval"),
            subject="the default interval",
        )
        for index, raw in feeds:
            feed = _quietly(FeedConfig, raw)
            if feed is None or (feed.interval, feed.min_interval, feed.max_interval) == (
                None,
                None,
                None,
            ):
                continue
            own = ("feeds", index, "interval")
            name = self.loading.show(("feeds", index, "name"), feed.name)
            self._check_bounds(
                ("feeds", index),
                feed.interval or defaults.interval,
                feed.min_interval or defaults.min_interval,
                feed.max_interval or defaults.max_interval,
                interval_path=own if feed.interval else ("feeds", index),
                subject=f"the interval of feed {name}",
            )

    def _check_feed_lease(self) -> None:
        """``feed_lease`` ≥ ``defaults.timeout``.

        A pass renews its leases every third of a lease, but a lease must also
        outlast one fetch on its own: otherwise one late or failed renewal (a busy
        event loop, a database hiccup) hands a feed to another instance mid-fetch.
        """
        raw = self.data.get("feed_lease")
        defaults = _quietly(Defaults, self.data.get("defaults") or {})
        if not isinstance(raw, str) or defaults is None:
            return  # unset, or a problem the model already reported
        try:
            lease = parse_duration(raw)
        except DurationError:
            return
        if lease < defaults.timeout:
            timeout = format_duration(defaults.timeout)
            self.loading.add(
                ("feed_lease",),
                f"{self.loading.show(('feed_lease',), raw)} is shorter than defaults.timeout "
                f"({timeout}): another instance could take a feed over while its fetch still "
                f"runs; set feed_lease to at least {timeout}, or leave it out for the default "
                "(twice defaults.timeout plus 1m)",
            )

    def _check_bounds(
        self,
        path: Path,
        interval: timedelta,
        low: timedelta,
        high: timedelta,
        *,
        interval_path: Path,
        subject: str,
    ) -> None:
        if low > high:
            self.loading.add(
                path,
                f"min_interval ({format_duration(low)}) is longer than "
                f"max_interval ({format_duration(high)})",
            )
        elif interval < low:
            self.loading.warn(
                interval_path,
                f"{subject} ({format_duration(interval)}) is below min_interval "
                f"({format_duration(low)}); it will be polled every {format_duration(low)} "
                "(lower min_interval to allow it)",
            )
        elif interval > high:
            self.loading.warn(
                interval_path,
                f"{subject} ({format_duration(interval)}) is above max_interval "
                f"({format_duration(high)}); it will be polled every {format_duration(high)}",
            )

    def _check_feed_ref(self, path: Path, ref: str, feed_names: list[str], tags: set[str]) -> None:
        shown = self.loading.show(path, ref)
        if ref.startswith(TAG_PREFIX):
            tag = ref[len(TAG_PREFIX) :]
            if tag not in tags:
                hint = did_you_mean(tag, tags)
                self.loading.add(path, f"no feed has the tag {self.loading.show(path, tag)}{hint}")
        elif ref not in feed_names:
            hint = did_you_mean(ref, feed_names) or " (write tag:NAME to select feeds by tag)"
            self.loading.add(path, f"unknown feed {shown}{hint}")

    def _check_notifier_ref(self, path: Path, name: str, notifiers: list[str]) -> None:
        if name not in notifiers:
            known = ", ".join(notifiers)
            self.loading.add(
                path,
                f"unknown notifier {self.loading.show(path, name)}"
                f"{did_you_mean(name, notifiers)}; notifiers are: {known}",
            )

    def _check_lists(self) -> None:
        lists = self.data.get("lists")
        if not isinstance(lists, dict):
            return
        for name, terms in lists.items():
            # A query names a list after its "@": a name it cannot write is a list
            # that can be defined and never used.
            problem = list_name_problem(name)
            if problem is not None:
                self.loading.add(("lists", name), problem if name.strip() else (
                    "a list needs a name (as in `csto: [CSTO, ОДКБ]`), which queries use "
                    "as @csto"))
            if isinstance(terms, list) and not terms:
                self.loading.add(("lists", name), "a list needs at least one term")
            # Every entry is checked where it is written, whether a rule uses the list
            # or not: an unused list is still part of the config.
            for index, entry in _indexed_strings(terms):
                try:
                    parse_list_entry(entry)
                except RuleError as exc:
                    path = ("lists", name, index)
                    if self.loading.expanded.get(path):
                        # The entry came from the environment: do not print it.
                        message = f"{exc.message} ({self.loading.show(path, entry)})"
                    elif repr(entry) in exc.message or exc.column <= 1:
                        message = exc.message
                    else:
                        message = exc.render()  # the entry with a caret under the problem
                    self.loading.add(path, message)

    def _check_email_security(self) -> None:
        notifiers = self.data.get("notifiers")
        if not isinstance(notifiers, dict):
            return
        for name, raw in notifiers.items():
            if (
                isinstance(raw, dict)
                and raw.get("type") == "email"
                and raw.get("security") == "none"
                and raw.get("password") is not None
            ):
                self.loading.warn(
                    ("notifiers", name, "security"),
                    "security: none sends the SMTP password unencrypted",
                )

    def compiled_rules(self) -> RuleSet | None:
        """Compile every rule query; each error becomes a problem at that query's line.

        Returns None when any rule failed. A rule whose name repeats an earlier one (already
        reported above) is compiled on its own, so its query is still checked.
        """
        batches: list[dict[str, tuple[int, RuleSpec]]] = [{}]
        for index, rule in self._entries("rules"):
            name, query = rule.get("name"), rule.get("query")
            if isinstance(query, str):
                query = query.rstrip()  # as RuleConfig stores it
            if isinstance(name, str) and isinstance(query, str) and query:
                line = self.loading.lines.get(("rules", index, "query"))
                spec = RuleSpec(name, query, line)
                if name in batches[0]:
                    batches.append({name: (index, spec)})
                else:
                    batches[0][name] = (index, spec)
        compiled: list[RuleSet] = []
        for batch in batches:
            try:
                ruleset = compile_rules(
                    [spec for _, spec in batch.values()], lists=self._usable_lists()
                )
            except RuleSetError as exc:
                for error in exc.errors:
                    if error.empty_list is not None:
                        # A list is empty to rules only when it is empty, not a list,
                        # or holds no text (_usable_lists): each is reported where the
                        # list is written, and a rule using it need not repeat that.
                        continue
                    self._add_rule_error(batch, error)
                self._warn_rules(batch, exc.warnings)
                continue
            compiled.append(ruleset)
            self._warn_rules(batch, ruleset.warnings)
        return compiled[0] if len(compiled) == len(batches) else None

    def _warn_rules(self, batch: Mapping[str, tuple[int, RuleSpec]],
                    warnings: Iterable[RuleWarning]) -> None:
        for warning in warnings:
            # Named as errors are: an editor scanning the output looks for the rule.
            self.loading.warn(self._query_path(batch, warning.rule),
                              f"rule '{warning.rule}': {warning.message}")

    def _add_rule_error(self, batch: Mapping[str, tuple[int, RuleSpec]], error: RuleError) -> None:
        path = self._query_path(batch, error.rule)
        if self.loading.expanded.get(path):
            # The query took text from the environment: do not print it.
            message = f"rule '{error.rule}': {error.message} (at column {error.column})"
        else:
            # The problem's prefix gives file and line; render() adds the caret.
            message = error.for_rule(error.rule or "?", None).render()
            line = self._line_in_block(path, error)
            if line is not None:
                self.loading.add_problem(
                    ConfigProblem(self.loading.source, line, render_path(path), message))
                return
        self.loading.add(path, message)

    def _line_in_block(self, path: Path, error: RuleError) -> int | None:
        """The line of the problem's column in a ``query: |`` block, which keeps the
        editor's line breaks: the query's own line would send them to its first line."""
        first = self.loading.block_lines.get(path)
        query = value_at(self.data, path)
        if first is None or not isinstance(query, str) or query.rstrip() != error.query:
            return None  # not a literal block, or the column is in a list's entry
        return first + error.query.count("\n", 0, max(error.column - 1, 0))

    @staticmethod
    def _query_path(batch: Mapping[str, tuple[int, RuleSpec]], rule: str | None) -> Path:
        if rule is not None and rule in batch:
            return ("rules", batch[rule][0], "query")
        return ("rules",)

    def _usable_lists(self) -> dict[str, list[str]]:
        """Each list as rules may use it: its well-formed entries.

        A bad entry is reported at its own line (_check_lists), so rules are compiled
        without it rather than repeating it, and a list with a bad entry still exists:
        a rule naming it must not hear "unknown list".
        """
        lists = self.data.get("lists")
        if not isinstance(lists, dict):
            return {}
        usable: dict[str, list[str]] = {}
        for name, terms in lists.items():
            if not name.strip():
                continue  # reported above; "unknown list" must not offer it as "@"
            if isinstance(terms, str):
                terms = [terms]  # reported as not a list; read as the one term it names
            if not isinstance(terms, list):
                terms = []  # reported as not a list (an empty value, a mapping)
            strings = [term for term in terms if isinstance(term, str)]
            good = [term for term in strings if _entry_parses(term)]
            # With no good entry left, the rule reports the list's first bad one.
            usable[name] = good or strings
        return usable


def _entry_parses(entry: str) -> bool:
    try:
        parse_list_entry(entry)
    except RuleError:
        return False
    return True


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _indexed_strings(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, str)]


_M = typing.TypeVar("_M", bound=BaseModel)


def _quietly(model: type[_M], data: Any) -> _M | None:
    """Validate one part on its own; its errors were already reported by the full pass."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
