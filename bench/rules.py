"""Rule-engine throughput: indexed matching against evaluating every rule.

    python -m bench rules [--rules 10000,100000] [--items 1000] [--seed 7]

Rules and items are generated from the real feeds in ``../shared/corpus/feeds``
(read at run time): rule terms come from the words of real headlines and
summaries, phrases are word runs from real headlines, and each item is a real
headline over about 300 words of real summaries.  The mix follows what editors
write: 2-6 terms, ~30% with a phrase, ~20% with NOT, ~10% with a wildcard, ~5%
with NEAR, some scoped to the title.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import gc
import html
import itertools
import json
import random
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rules import Document, RuleSpec, compile_rules

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
_TAG = re.compile(r"<[^>]+>")
# Words of 4+ letters in alphabetic scripts (CJK runs are not words).
_WORD = re.compile(r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]{4,}")
_STOP = frozenset(
    (
        "that",
        "this",
        "with",
        "from",
        "have",
        "been",
        "were",
        "will",
        "would",
        "their",
        "there",
        "they",
        "what",
        "when",
        "which",
        "said",
        "says",
        "after",
        "over",
        "more",
        "than",
        "about",
        "into",
        "also",
        "your",
        "just",
        "like",
        "only",
        "other",
        "some",
        "could",
        "should",
        "first",
        "year",
        "years",
        "week",
        "last",
        "while",
        "where",
        "being",
        "because",
        "these",
        "those",
        "them",
        "then",
        "than",
        "very",
        "most",
        "many",
        "much",
        "even",
        "back",
        "make",
        "made",
        "still",
        "here",
    )
)


@dataclass(frozen=True)
class Corpus:
    headlines: list[str]
    summaries: list[str]


def read_corpus(root: Path = CORPUS) -> Corpus:
    """Headlines and summary texts from every feed file feedparser can read."""
    import feedparser  # the bench only; the engine itself never sees feed formats

    headlines: list[str] = []
    summaries: list[str] = []
    for path in news_files(root):
        parsed = feedparser.parse(path.read_bytes())
        for entry in parsed.entries:
            title = _plain(entry.get("title", ""))
            summary = _plain(entry.get("summary", ""))
            if title:
                headlines.append(title)
            if len(summary.split()) >= 8:
                summaries.append(summary)
    return Corpus(headlines, summaries)


def news_files(root: Path) -> list[Path]:
    """The news feeds of the corpus, as its MANIFEST.tsv labels them."""
    files = []
    for line in (root / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        columns = line.split("\t")
        if len(columns) >= 9 and columns[8].startswith("news"):
            files.append(root / columns[0])
    return files


def _plain(markup: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def make_items(corpus: Corpus, count: int, rng: random.Random) -> list[Document]:
    items = []
    for _ in range(count):
        words = 0
        parts = []
        while words < 300:
            summary = rng.choice(corpus.summaries)
            parts.append(summary)
            words += len(summary.split())
        feed = rng.choice(["BBC World", "Reuters", "Al Jazeera", "DW", "NYT World"])
        items.append(
            Document(
                title=rng.choice(corpus.headlines),
                summary=parts[0],
                content=" ".join(parts[1:]),
                feeds=(feed, rng.choice(["world", "politics", "business"])),
                url=f"https://{feed.lower().replace(' ', '')}.example/{rng.randrange(10**6)}",
            )
        )
    return items


class RuleMaker:
    """Realistic watch rules from the corpus vocabulary."""

    def __init__(self, corpus: Corpus, rng: random.Random) -> None:
        counts: Counter[str] = Counter()
        for text in corpus.headlines + corpus.summaries:
            counts.update(w for w in _WORD.findall(text) if w.lower() not in _STOP)
        self.words = list(counts)
        # Editors name things more often than they write common words, but not only
        # rare ones either: weight by the square root of frequency.
        self.cum_weights = list(itertools.accumulate(counts[w] ** 0.5 for w in self.words))
        self.headline_words = [h.split() for h in corpus.headlines if len(h.split()) >= 3]
        self.rng = rng

    def word(self) -> str:
        return self.rng.choices(self.words, cum_weights=self.cum_weights)[0]

    def phrase(self) -> str:
        words = self.rng.choice(self.headline_words)
        size = self.rng.choice((2, 2, 3))
        start = self.rng.randrange(0, max(1, len(words) - size + 1))
        text = " ".join(re.sub(r'["“”]', "", w) for w in words[start : start + size])
        return f'"{text}"' if _WORD.search(text) else self.word()

    def wildcard(self) -> str:
        word = self.word()
        return word[: self.rng.randint(4, max(4, len(word) - 1))] + "*"

    def rule(self) -> str:
        rng = self.rng
        terms = [self.word() for _ in range(rng.randint(2, 6))]
        if rng.random() < 0.30:
            terms[0] = self.phrase()
        if rng.random() < 0.10:
            terms[-1] = self.wildcard()
        if rng.random() < 0.05:
            terms[0] = f"{terms[0]} NEAR/5 {self.word()}"
        # Two or three AND-ed concepts, each an OR of synonyms: "(a OR b) AND c".
        groups = 2 if len(terms) <= 3 else rng.randint(2, 3)
        buckets: list[list[str]] = [[] for _ in range(groups)]
        for i, term in enumerate(terms):
            buckets[i % groups].append(term)
        parts = []
        for bucket in buckets:
            group = " OR ".join(bucket)
            parts.append(f"({group})" if len(bucket) > 1 else group)
        if rng.random() < 0.15:
            parts[0] = (
                f"title:{parts[0]}"
                if parts[0].startswith("(") or " " not in parts[0]
                else f"title:({parts[0]})"
            )
        query = " AND ".join(parts)
        if rng.random() < 0.20:
            query += f" AND NOT {self.word()}"
        return query


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def run(rule_counts: list[int], item_count: int, seed: int, naive_sample: int) -> dict:
    rng = random.Random(seed)
    corpus = read_corpus()
    items = make_items(corpus, item_count, rng)
    maker = RuleMaker(corpus, rng)
    all_queries = [maker.rule() for _ in range(max(rule_counts))]
    results = []
    compile_10k = None
    for count in rule_counts:
        specs = [RuleSpec(f"rule-{i}", q) for i, q in enumerate(all_queries[:count])]
        gc.collect()
        started = time.perf_counter()
        ruleset = compile_rules(specs)
        build_s = time.perf_counter() - started
        if count == 10_000:
            compile_10k = build_s

        started = time.perf_counter()
        hits = sum(len(ruleset.match(item)) for item in items)
        indexed_s = time.perf_counter() - started

        sample = items if count <= 10_000 else items[:naive_sample]
        started = time.perf_counter()
        brute = [ruleset.match_brute_force(item) for item in sample]
        naive_s = time.perf_counter() - started
        # The point of the index is to change nothing: check it on the sample.
        mismatches = sum(ruleset.match(item) != b for item, b in zip(sample, brute, strict=True))

        items_per_s = len(items) / indexed_s
        naive_items_per_s = len(sample) / naive_s
        results.append(
            {
                "rules": count,
                "items": len(items),
                "items_per_s": round(items_per_s, 1),
                "naive_items_per_s": round(naive_items_per_s, 2),
                "naive_sample_items": len(sample),
                "speedup_vs_naive": round(items_per_s / naive_items_per_s, 1),
                "build_s": round(build_s, 3),
                "rss_mb": round(rss_mb(), 1),
                "hits": hits,
                "mismatches": mismatches,
                "warnings": len(ruleset.warnings),
            }
        )
        del ruleset
    return {
        "benchmark": "rules",
        "seed": seed,
        "corpus_headlines": len(corpus.headlines),
        "compile_10k_s": round(compile_10k, 3) if compile_10k is not None else None,
        "results": results,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench rules", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rules", default="10000,100000", help="comma-separated rule counts")
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=50,
        help="items for the brute-force baseline above 10,000 rules",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.rules.split(",")]
    report = run(counts, args.items, args.seed, args.naive_sample)

    header = (
        f"{'rules':>8} {'build s':>8} {'items/s':>9} {'naive/s':>9} {'speedup':>8} "
        f"{'RSS MB':>7} {'hits':>6} {'diff':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        print(
            f"{r['rules']:>8} {r['build_s']:>8.2f} {r['items_per_s']:>9.0f} "
            f"{r['naive_items_per_s']:>9.1f} {r['speedup_vs_naive']:>7.1f}x "
            f"{r['rss_mb']:>7.0f} {r['hits']:>6} {r['mismatches']:>5}"
        )
    if report["compile_10k_s"] is not None:
        print(f"compiling 10,000 rules: {report['compile_10k_s']:.2f} s")
    print(json.dumps(report))
    return 1 if any(r["mismatches"] for r in report["results"]) else 0
