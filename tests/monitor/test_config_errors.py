"""Broken configs, each with the exact text `wirewatch check` must print for it.

Every case is a whole small config.yaml; the expected text is what str(ConfigError)
renders: one `file:line: path: message` per problem, in file order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from monitor.config import ConfigError, load_config

FEED = """\
feeds:
  - name: bbc
    url: https://example.org/bbc.xml
"""

BINARY = "binary data (!!binary) is not accepted: write the value without the !!binary tag"


@dataclass(frozen=True)
class Broken:
    name: str
    text: str
    expected: str
    environ: dict[str, str] = field(default_factory=dict)


CASES = [
    Broken(
        "unknown top-level key, with did-you-mean",
        "databse: sqlite:///x.db\n" + FEED,
        "config.yaml:1: databse: unknown key 'databse' (did you mean 'database'?)",
    ),
    Broken(
        "unknown top-level key without a close match lists the keys",
        FEED + "colour: red\n",
        "config.yaml:4: colour: unknown key 'colour'; expected one of: database, feed_lease, "
        "user_agent, defaults, concurrency, ops_notify, full_text_concurrency, "
        "allow_private_article_hosts, lists, feeds, notifiers, rules, http, retention",
    ),
    Broken(
        "unknown feed key",
        FEED + "    intervall: 5m\n",
        "config.yaml:4: feeds[0].intervall: unknown key 'intervall' (did you mean 'interval'?)",
    ),
    Broken(
        "unknown defaults key",
        "defaults:\n  timout: 20s\n" + FEED,
        "config.yaml:2: defaults.timout: unknown key 'timout' (did you mean 'timeout'?)",
    ),
    Broken(
        "unknown notifier key",
        FEED + "notifiers:\n  desk:\n    type: slack\n    token: xoxb-1\n    chanel: '#news'\n",
        "config.yaml:8: notifiers.desk.chanel: unknown key 'chanel' (did you mean 'channel'?)",
    ),
    Broken(
        "unknown rule key",
        FEED + "rules:\n  - name: r\n    query: CSTO\n    notfy: [console]\n",
        "config.yaml:7: rules[0].notfy: unknown key 'notfy' (did you mean 'notify'?)",
    ),
    Broken(
        "feed without url",
        "feeds:\n  - name: bbc\n    tags: [uk]\n",
        "config.yaml:2: feeds[0]: missing required key 'url'",
    ),
    Broken(
        "no feeds at all",
        "database: sqlite:///x.db\n",
        "config.yaml:1: missing required key 'feeds'",
    ),
    Broken(
        "an empty feed list",
        "feeds: []\n",
        "config.yaml:1: feeds: must not be empty",
    ),
    Broken(
        "duplicate feed name",
        FEED + "  - name: bbc\n    url: https://example.org/other.xml\n",
        "config.yaml:4: feeds[1].name: duplicate feed name 'bbc' (first used on line 2)",
    ),
    Broken(
        "duplicate rule name",
        FEED + "rules:\n  - name: r\n    query: CSTO\n  - name: r\n    query: NATO\n",
        "config.yaml:7: rules[1].name: duplicate rule name 'r' (first used on line 5)",
    ),
    Broken(
        "duration in words",
        FEED + "    interval: five minutes\n",
        "config.yaml:4: feeds[0].interval: expected a duration like 30s, 5m, 2h or 1d, "
        "got 'five minutes'",
    ),
    Broken(
        "duration without a unit",
        "defaults:\n  timeout: 20\n" + FEED,
        "config.yaml:2: defaults.timeout: expected a duration like 30s, 5m, 2h or 1d, got 20",
    ),
    Broken(
        "zero duration",
        FEED + "    expect_every: 0s\n",
        "config.yaml:4: feeds[0].expect_every: a duration must be longer than zero, got '0s'",
    ),
    Broken(
        "feed lease in words",
        FEED + "feed_lease: 2 minutes\n",
        "config.yaml:4: feed_lease: expected a duration like 30s, 5m, 2h or 1d, got '2 minutes'",
    ),
    Broken(
        "feed lease as a bare number of seconds",
        FEED + "feed_lease: 120\n",
        "config.yaml:4: feed_lease: expected a duration like 30s, 5m, 2h or 1d, got 120",
    ),
    Broken(
        "zero feed lease",
        FEED + "feed_lease: 0s\n",
        "config.yaml:4: feed_lease: a duration must be longer than zero, got '0s'",
    ),
    Broken(
        "feed lease shorter than the default timeout",
        "feed_lease: 10s\n" + FEED,
        "config.yaml:1: feed_lease: '10s' is shorter than defaults.timeout (20s): another "
        "instance could take a feed over while its fetch still runs; set feed_lease to at "
        "least 20s, or leave it out for the default (twice defaults.timeout plus 1m)",
    ),
    Broken(
        "feed lease shorter than a configured timeout",
        "defaults:\n  timeout: 1m\n" + FEED + "feed_lease: 45s\n",
        "config.yaml:6: feed_lease: '45s' is shorter than defaults.timeout (1m): another "
        "instance could take a feed over while its fetch still runs; set feed_lease to at "
        "least 1m, or leave it out for the default (twice defaults.timeout plus 1m)",
    ),
    Broken(
        "feed lease from the environment is not repeated",
        FEED + "feed_lease: ${FEED_LEASE}\n",
        "config.yaml:4: feed_lease: the value of ${FEED_LEASE} is shorter than "
        "defaults.timeout (20s): another instance could take a feed over while its fetch "
        "still runs; set feed_lease to at least 20s, or leave it out for the default "
        "(twice defaults.timeout plus 1m)",
        environ={"FEED_LEASE": "5s"},
    ),
    Broken(
        "wrong type: a list where a duration belongs",
        FEED + "    interval: [1]\n",
        "config.yaml:4: feeds[0].interval: expected a duration like 30s, 5m, 2h or 1d, got a list",
    ),
    Broken(
        "wrong type: text where a list belongs",
        FEED + "    tags: uk\n",
        "config.yaml:4: feeds[0].tags: expected a list, got 'uk' (write [a, b] for a list)",
    ),
    Broken(
        "wrong type: a mapping where text belongs",
        "feeds:\n  - name: {first: bbc}\n    url: https://example.org/bbc.xml\n",
        "config.yaml:2: feeds[0].name: expected text, got a mapping",
    ),
    Broken(
        "wrong type: a number where text belongs",
        "feeds:\n  - name: 2024\n    url: https://example.org/bbc.xml\n",
        "config.yaml:2: feeds[0].name: expected text, got 2024 (put it in quotes)",
    ),
    Broken(
        # Accepted before, then every poll failed on an OverflowError computing the next.
        "interval past the calendar",
        FEED + "    interval: 99999999d\n    max_interval: 99999999d\n",
        "config.yaml:4: feeds[0].interval: a duration must be at most 36500d (about 100 years), "
        "got '99999999d'\n"
        "config.yaml:5: feeds[0].max_interval: a duration must be at most 36500d "
        "(about 100 years), got '99999999d'",
    ),
    Broken(
        # Was an OverflowError traceback out of `wirewatch check` itself.
        "retention too long for a timedelta",
        FEED + "retention:\n  items: 999999999999d\n",
        "config.yaml:5: retention.items: a duration must be at most 36500d (about 100 years), "
        "got '999999999999d'",
    ),
    Broken(
        "default min_interval longer than max_interval",
        "defaults:\n  min_interval: 2d\n  max_interval: 1d\n" + FEED,
        "config.yaml:1: defaults: min_interval (2d) is longer than max_interval (1d)",
    ),
    Broken(
        "wrong type: not a boolean",
        FEED + "    enabled: sometimes\n",
        "config.yaml:4: feeds[0].enabled: expected true or false, got 'sometimes'",
    ),
    Broken(
        "concurrency below one",
        "concurrency:\n  global: 0\n" + FEED,
        "config.yaml:2: concurrency.global: must be at least 1, got 0",
    ),
    Broken(
        "feed URL that is not http(s)",
        "feeds:\n  - name: bbc\n    url: ftp://example.org/bbc.xml\n",
        "config.yaml:3: feeds[0].url: a feed URL must be an http:// or https:// URL, "
        "got 'ftp://example.org/bbc.xml'",
    ),
    Broken(
        "min_interval longer than max_interval",
        FEED + "    min_interval: 2h\n    max_interval: 1h\n",
        "config.yaml:2: feeds[0]: min_interval (2h) is longer than max_interval (1h)",
    ),
    Broken(
        "unknown notifier type",
        FEED + "notifiers:\n  desk:\n    type: teams\n",
        "config.yaml:6: notifiers.desk.type: unknown notifier type 'teams': "
        "must be one of slack, email, console",
    ),
    Broken(
        "notifier without type",
        FEED + "notifiers:\n  desk:\n    channel: '#news'\n",
        "config.yaml:5: notifiers.desk: missing required key 'type' (one of slack, email, console)",
    ),
    Broken(
        "notifiers written as a list",
        FEED + "notifiers:\n  - type: console\n",
        "config.yaml:4: notifiers: expected a mapping, got a list",
    ),
    Broken(
        "slack token without channel names the fix",
        FEED + "notifiers:\n  desk:\n    type: slack\n    token: xoxb-1\n",
        "config.yaml:7: notifiers.desk.token: token needs a channel to post to: add `channel: "
        '"#news-alerts"` (a channel name or ID the bot has been invited to)',
    ),
    Broken(
        "slack with both token and webhook",
        FEED + "notifiers:\n  desk:\n    type: slack\n    token: xoxb-1\n    channel: '#news'\n"
        "    webhook_url: https://hooks.example.org/T1\n",
        "config.yaml:9: notifiers.desk.webhook_url: "
        "set either token + channel or webhook_url, not both",
    ),
    Broken(
        "slack with neither token nor webhook",
        FEED + "notifiers:\n  desk:\n    type: slack\n",
        "config.yaml:5: notifiers.desk: needs either token + channel (a bot token) "
        "or webhook_url (an incoming webhook)",
    ),
    Broken(
        "email without to",
        FEED + "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
        "    from: wirewatch@example.org\n",
        "config.yaml:5: notifiers.mail: missing required key 'to'",
    ),
    Broken(
        "email with an empty to",
        FEED + "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
        "    from: wirewatch@example.org\n    to: []\n",
        "config.yaml:9: notifiers.mail.to: must not be empty",
    ),
    Broken(
        "email to something that is not an address",
        FEED + "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
        "    from: wirewatch@example.org\n    to: [desk@example.org, newsdesk]\n",
        "config.yaml:9: notifiers.mail.to[1]: to[1] is not an e-mail address like "
        "desk@example.org, got 'newsdesk'",
    ),
    Broken(
        "email user without password",
        FEED + "notifiers:\n  mail:\n    type: email\n    host: smtp.example.org\n"
        "    username: wirewatch\n    from: wirewatch@example.org\n    to: [d@example.org]\n",
        "config.yaml:5: notifiers.mail: username and password go together: add password",
    ),
    Broken(
        "missing environment variable names it and the line",
        FEED + "notifiers:\n  desk:\n    type: slack\n    token: ${SLACK_BOT_TOKEN}\n"
        "    channel: '#news'\n",
        "config.yaml:7: notifiers.desk.token: environment variable SLACK_BOT_TOKEN is not set "
        "(set it, or write ${SLACK_BOT_TOKEN:-default})",
    ),
    Broken(
        "a missing variable is reported once, not again as a bad duration",
        FEED + "    interval: ${POLL_INTERVAL}\n",
        "config.yaml:4: feeds[0].interval: environment variable POLL_INTERVAL is not set "
        "(set it, or write ${POLL_INTERVAL:-default})",
    ),
    Broken(
        "malformed variable reference",
        "feeds:\n  - name: ${FEED NAME}\n    url: https://example.org/bbc.xml\n",
        "config.yaml:2: feeds[0].name: cannot read '${FEED NAME}': write ${NAME} or "
        "${NAME:-default}, or $${ for a literal ${",
    ),
    Broken(
        "slack story_updates not a mode",
        FEED + "notifiers:\n  desk:\n    type: slack\n    token: xoxb-1\n"
        "    channel: '#news'\n    story_updates: edits\n",
        "config.yaml:9: notifiers.desk.story_updates: must be one of edit, thread, off, "
        "got 'edits'",
    ),
    Broken(
        "email cannot edit a sent story alert",
        FEED + "notifiers:\n  editors:\n    type: email\n    host: smtp.example.org\n"
        "    from: w@example.org\n    to: [e@example.org]\n    story_updates: edit\n",
        "config.yaml:10: notifiers.editors.story_updates: must be one of thread, off, "
        "got 'edit'",
    ),
    Broken(
        "rule severity not in the list",
        FEED + "rules:\n  - name: r\n    query: CSTO\n    severity: urgent\n",
        "config.yaml:7: rules[0].severity: must be one of low, normal, high, critical, "
        "got 'urgent'",
    ),
    Broken(
        "bad rule query shows the query with a caret under the column",
        FEED + "rules:\n  - name: csto\n    query: CSTO AND\n",
        "config.yaml:6: rules[0].query: rule 'csto': expected a term after AND\n"
        "  CSTO AND\n"
        "          ^",
    ),
    Broken(
        "unbalanced parenthesis in a rule",
        FEED + "rules:\n  - name: csto\n    query: (CSTO OR NATO\n",
        "config.yaml:6: rules[0].query: rule 'csto': unbalanced parenthesis opened at column 1\n"
        "  (CSTO OR NATO\n"
        "               ^",
    ),
    Broken(
        "a query written as a block scalar points into its own text",
        FEED + "rules:\n  - name: r\n    query: >\n      CSTO AND\n      (exit OR\n",
        "config.yaml:6: rules[0].query: rule 'r': expected a term after OR\n"
        "  CSTO AND (exit OR\n"
        "                   ^",
    ),
    Broken(
        "an error in a literal block query names the line it is on",
        FEED + "rules:\n  - name: r\n    query: |\n\n      (CSTO OR NATO)\n"
        "      AND (exit OR wi*)\n      AND troops\n",
        "config.yaml:9: rules[0].query: rule 'r': wildcard needs at least 3 letters before *\n"
        "  AND (exit OR wi*)\n"
        "                 ^",
    ),
    Broken(
        "an error on a literal block's first line names that line",
        FEED + "rules:\n  - name: r\n    query: |-\n      wi* AND exit\n",
        "config.yaml:7: rules[0].query: rule 'r': wildcard needs at least 3 letters before *\n"
        "  wi* AND exit\n"
        "    ^",
    ),
    Broken(
        "a query of thousands of characters is shown around the caret",
        FEED + "rules:\n  - name: r\n    query: " + "CSTO OR " * 2000 + "wi*\n",
        "config.yaml:6: rules[0].query: rule 'r': wildcard needs at least 3 letters before *\n"
        "  …" + ("CSTO OR " * 2000 + "wi")[-60:] + "*\n"
        "  " + " " * 61 + "^",
    ),
    Broken(
        "rule using a list that is not defined",
        FEED + "lists:\n  csto: [CSTO]\nrules:\n  - name: r\n    query: '@cst AND exit'\n",
        "config.yaml:8: rules[0].query: rule 'r': unknown list @cst (lists: @csto)\n"
        "  @cst AND exit\n"
        "  ^",
    ),
    Broken(
        "a rule with a repeated name still has its query checked",
        FEED + "rules:\n  - name: r\n    query: CSTO\n  - name: r\n    query: wi*\n",
        "config.yaml:7: rules[1].name: duplicate rule name 'r' (first used on line 5)\n"
        "config.yaml:8: rules[1].query: rule 'r': wildcard needs at least 3 letters before *\n"
        "  wi*\n"
        "    ^",
    ),
    Broken(
        "a bad list entry is reported where it is written, though no rule uses the list",
        FEED + 'lists:\n  csto:\n    - CSTO\n    - wi*\n    - "!!!"\n',
        "config.yaml:7: lists.csto[1]: wildcard needs at least 3 letters before *\n"
        "  wi*\n"
        "    ^\n"
        "config.yaml:8: lists.csto[2]: '!!!' has no letters or digits to search for",
    ),
    Broken(
        "a rule using a list with a bad entry does not repeat it",
        FEED + "lists:\n  csto: [CSTO, wi*]\nrules:\n  - name: r\n    query: '@csto'\n",
        "config.yaml:5: lists.csto[1]: wildcard needs at least 3 letters before *\n"
        "  wi*\n"
        "    ^",
    ),
    Broken(
        "a bad list entry taken from the environment is not printed",
        FEED + 'lists:\n  csto: [CSTO, "${EXTRA_TERM}"]\n',
        "config.yaml:5: lists.csto[1]: wildcard needs at least 3 letters before * "
        "(the value of ${EXTRA_TERM})",
        environ={"EXTRA_TERM": "ab*"},
    ),
    Broken(
        "a list with an entry that is not text is still a list its rules may name",
        FEED + "lists:\n  csto: [CSTO, 5]\nrules:\n  - name: r\n    query: '@csto AND exit'\n",
        "config.yaml:5: lists.csto[1]: expected text, got 5 (put it in quotes)",
    ),
    Broken(
        "a list without a name",
        FEED + 'lists:\n  "": [a, b]\n',
        'config.yaml:5: lists."": a list needs a name (as in `csto: [CSTO, ОДКБ]`), which '
        "queries use as @csto",
    ),
    Broken(
        "a list named only with spaces, its entries still checked",
        FEED + 'lists:\n  " ": [a, 5]\n',
        'config.yaml:5: lists." "[1]: expected text, got 5 (put it in quotes)\n'
        'config.yaml:5: lists." ": a list needs a name (as in `csto: [CSTO, ОДКБ]`), which '
        "queries use as @csto",
    ),
    Broken(
        "a list without a name is not offered to a rule as '@'",
        FEED + 'lists:\n  "": [a]\n  csto: [CSTO]\nrules:\n  - name: r\n    query: "@nato"\n',
        'config.yaml:5: lists."": a list needs a name (as in `csto: [CSTO, ОДКБ]`), which '
        "queries use as @csto\n"
        "config.yaml:9: rules[0].query: rule 'r': unknown list @nato (lists: @csto)\n"
        "  @nato\n"
        "  ^",
    ),
    Broken(
        # Was read as the term "CSTO" in the config, yet left out of the compiled rules.
        "a list entry tagged !!binary is not text",
        FEED + "lists:\n  csto: [NATO, !!binary Q1NUTw==]\n"
        "rules:\n  - name: r\n    query: '@csto'\n",
        "config.yaml:5: lists.csto[1]: " + BINARY,
    ),
    Broken(
        "a list entry tagged !!binary that is not UTF-8 is not text either",
        FEED + "lists:\n  csto:\n    - CSTO\n    - !!binary /w==\n",
        "config.yaml:7: lists.csto[1]: " + BINARY,
    ),
    Broken(
        "a list tagged !!binary",
        FEED + "lists:\n  csto: !!binary Q1NUTw==\n",
        "config.yaml:5: lists.csto: " + BINARY,
    ),
    Broken(
        # Was decoded into the config's rule, while the compiled rules never held it: a
        # rule that loaded cleanly and never fired.
        "a query tagged !!binary",
        FEED + "rules:\n  - name: r\n    query: !!binary Q1NUTw==\n",
        "config.yaml:6: rules[0].query: " + BINARY,
    ),
    Broken(
        "a feed name tagged !!binary",
        "feeds:\n  - name: !!binary YmJj\n    url: https://example.org/bbc.xml\n",
        "config.yaml:2: feeds[0].name: " + BINARY,
    ),
    Broken(
        "a list name that a query could never write after @",
        FEED + 'lists:\n  my list: [CSTO]\n  "nato(en)": [NATO]\n  csto-en: [CSTO]\n',
        "config.yaml:5: lists.my list: a query could never name this list: a list name ends "
        "at a space, parenthesis or quote, so @my list reads as @my; rename it, e.g. my_list\n"
        "config.yaml:6: lists.nato(en): a query could never name this list: a list name ends "
        "at a space, parenthesis or quote, so @nato(en) reads as @nato; rename it, e.g. "
        "nato_en",
    ),
    Broken(
        "a list name with a full-width space, which queries read as a space",
        FEED + "lists:\n  ｍｙ\u3000ｌｉｓｔ: [CSTO]\n",
        "config.yaml:5: lists.ｍｙ\u3000ｌｉｓｔ: a query could never name this list: a list "
        "name ends at a space, parenthesis or quote, so @ｍｙ\u3000ｌｉｓｔ reads as @ｍｙ; "
        "rename it, e.g. ｍｙ_ｌｉｓｔ",
    ),
    Broken(
        # YAML reads an unquoted 2024-01-01 as a date, as it reads 5 as a number.
        "a date where text belongs says so and how to keep it text",
        "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n"
        "    tags: [2024-01-01]\n",
        "config.yaml:4: feeds[0].tags[0]: expected text, got the date 2024-01-01 "
        "(put it in quotes)",
    ),
    Broken(
        # Each list is reported where it is written; the rule using them adds nothing.
        "lists that hold no usable term are not reported again at the rule",
        FEED + "lists:\n  a: []\n  b: [5]\n  c:\nrules:\n  - name: r\n"
        "    query: '@c OR @b OR @a'\n",
        "config.yaml:5: lists.a: a list needs at least one term\n"
        "config.yaml:6: lists.b[0]: expected text, got 5 (put it in quotes)\n"
        "config.yaml:7: lists.c: expected a list, got nothing (an empty value)",
    ),
    Broken(
        "an empty term list",
        FEED + "lists:\n  csto: []\n",
        "config.yaml:5: lists.csto: a list needs at least one term",
    ),
    Broken(
        "rule referencing an unknown feed",
        FEED + "rules:\n  - name: r\n    query: CSTO\n    feeds: [bcc]\n",
        "config.yaml:7: rules[0].feeds[0]: unknown feed 'bcc' (did you mean 'bbc'?)",
    ),
    Broken(
        "rule referencing a tag no feed has",
        FEED + "    tags: [europe]\nrules:\n  - name: r\n    query: CSTO\n    feeds: [tag:erope]\n",
        "config.yaml:8: rules[0].feeds[0]: no feed has the tag 'erope' (did you mean 'europe'?)",
    ),
    Broken(
        "rule referencing an unknown notifier",
        FEED + "notifiers:\n  desk:\n    type: console\n"
        "rules:\n  - name: r\n    query: CSTO\n    notify: [dsk]\n",
        "config.yaml:10: rules[0].notify[0]: unknown notifier 'dsk' (did you mean 'desk'?); "
        "notifiers are: desk",
    ),
    Broken(
        "rule with an empty feed list",
        FEED + "rules:\n  - name: r\n    query: CSTO\n    feeds: []\n",
        "config.yaml:7: rules[0].feeds: an empty list selects nothing; "
        "remove the key to mean 'all'",
    ),
    Broken(
        "ops_notify naming no notifier (only the implicit console exists)",
        "ops_notify: ops\n" + FEED,
        "config.yaml:1: ops_notify: unknown notifier 'ops'; notifiers are: console",
    ),
    Broken(
        "duplicate YAML key names both lines",
        "feeds:\n  - name: bbc\n    url: https://example.org/a.xml\n"
        "    url: https://example.org/b.xml\n",
        "config.yaml:4: feeds[0].url: duplicate key 'url' (first written on line 3)",
    ),
    Broken(
        "YAML syntax error with line and column",
        "feeds:\n  - name: bbc\n    url: [https://example.org/bbc.xml\n",
        "config.yaml:4: invalid YAML at column 1: expected ',' or ']', but got '<stream end>'",
    ),
    Broken(
        "tab indentation",
        "feeds:\n\t- name: bbc\n",
        "config.yaml:2: invalid YAML at column 1: found character '\\t' that cannot start "
        "any token",
    ),
    Broken(
        "empty file",
        "",
        "config.yaml: the file is empty; it needs at least a 'feeds:' list",
    ),
    Broken(
        "comments only is empty too",
        "# nothing yet\n",
        "config.yaml: the file is empty; it needs at least a 'feeds:' list",
    ),
    Broken(
        "a list at the top",
        "- name: bbc\n",
        "config.yaml:1: expected a mapping of settings at the top, got a list",
    ),
    Broken(
        "several problems together, in file order",
        "defaults:\n  interval: 5 min\n"
        "feeds:\n  - name: bbc\n    url: https://example.org/bbc.xml\n    tagz: [uk]\n"
        "  - name: dw\n"
        "notifiers:\n  desk:\n    type: slack\n    token: ${SLACK_BOT_TOKEN}\n"
        "    channel: '#news'\n"
        "rules:\n  - name: r\n    query: CSTO\n    notify: [desc]\n",
        "\n".join(
            [
                "config.yaml:2: defaults.interval: expected a duration like 30s, 5m, 2h or 1d, "
                "got '5 min'",
                "config.yaml:6: feeds[0].tagz: unknown key 'tagz' (did you mean 'tags'?)",
                "config.yaml:7: feeds[1]: missing required key 'url'",
                "config.yaml:11: notifiers.desk.token: environment variable SLACK_BOT_TOKEN "
                "is not set (set it, or write ${SLACK_BOT_TOKEN:-default})",
                "config.yaml:16: rules[0].notify[0]: unknown notifier 'desc' "
                "(did you mean 'desk'?); notifiers are: desk",
            ]
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_broken_config_reports_exactly(case: Broken) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(case.text, source="config.yaml", environ=case.environ)
    assert str(raised.value) == case.expected


def test_every_problem_is_a_structured_value() -> None:
    text = "feeds:\n  - name: bbc\n    url: ftp://x\n    intervall: 5m\n"
    with pytest.raises(ConfigError) as raised:
        load_config(text, source="conf/wire.yaml", environ={})
    found = [(p.source, p.line, p.path) for p in raised.value.problems]
    assert found == [
        ("conf/wire.yaml", 3, "feeds[0].url"),
        ("conf/wire.yaml", 4, "feeds[0].intervall"),
    ]
