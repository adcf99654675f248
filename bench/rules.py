"""Rule-engine throughput: indexed matching against evaluating every rule.

    python -m bench rules [--rules 10000,100000] [--items 1000] [--seed 7]

Everything is generated from the real feeds in ``../shared/corpus/feeds`` (read
at run time), split in two the way a newsroom meets news: every feed's stories
alternate between *past* stories, which editors wrote their standing rules
about, and *new* stories, which arrive as items.

* An item is one feed's new story: its headline over about 300 words of that
  feed's new summaries (one publisher, one language, as a real article is).
* A rule is written about one past story, the way the example rules in
  config.yaml are: two or three AND-ed *concepts* ("who" and "what"), each one
  of the story's named entities (capitalized words inside a sentence) or
  topical words (longer words off a stop list), OR-ed with the other forms of
  that word the news uses (``(Armenia OR Armenian)``, ``(tariff OR tariffs)``:
  the same word with up to 3 letters more or less, found among the past
  stories' words).  Words of unrelated meaning are never OR-ed together.  The
  mix follows the issue: 2-6 terms; ~30% with a headline phrase as a concept,
  ~20% with NOT (a topical word from another story), ~10% with a wildcard
  standing for a concept's forms (``withdraw*``), ~5% with NEAR between two
  concepts, ~15% with the first concept scoped to the title.  Nothing is tuned
  to the engine: a rule fires when a new story shares its subject, which is
  how often it fires; the table reports that hit rate.

  (Until the rule set had concepts, each rule OR-ed unrelated words of its
  story into two or three groups, ``(Imprensa OR servidores) AND (TJRS OR
  reflexos)``, looser than any editor's query: one rule fired on 1 item in 386,
  ~26 rules per item at 10,000 rules.  With concepts: 1 in ~1,230, ~8 per item.)

Matching throughput counts *which* rules fire per item (``RuleSet.match``, the
item's hits read for their rule names and dropped, as the daemon does); hits
explain themselves lazily, and the cost of explaining one (matched terms and
snippet) is measured separately, over the hits of the first 100 items.  Times
are CPU seconds of this process (the machine is shared with other test runs;
wall-clock figures are in the JSON).
The naive baseline runs ``match_brute_force``: every rule's matcher on its own,
one rule after another, over the same tokenized item.  Indexed and naive passes
alternate (``--passes``, default 3) and each side's fastest pass counts: the
ratio then compares like with like, however busy the machine was meanwhile.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import html
import json
import random
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rules import Document, RuleSet, RuleSpec, compile_rules
from rules.compile import Prepared

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
_TAG = re.compile(r"<[^>]+>")
# Words of alphabetic scripts (CJK runs are not words) and the sentences they stand in.
_WORD = re.compile(r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]+")
_SENTENCE_END = re.compile(r"[.!?:;]\s+|\s[-–—]\s")
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
        "does",
        "didn",
        "doesn",
        "people",
        "according",
        "between",
        "during",
        "before",
        "under",
        "again",
        "against",
        "among",
        "another",
        "around",
        "come",
        "comes",
        "going",
        "know",
        "need",
        "take",
        "takes",
        "today",
        "told",
        "want",
        "well",
        "whether",
        "without",
        "world",
        "including",
        "since",
        "until",
        "across",
    )
)


@dataclass(frozen=True)
class Story:
    feed: str
    headline: str
    summary: str


@dataclass(frozen=True)
class Corpus:
    past: list[Story]  # what rules are written about
    new: dict[str, list[Story]]  # feed -> the stories that arrive as items


def read_corpus(root: Path = CORPUS) -> Corpus:
    """Every news feed's stories, alternately past and new."""
    import feedparser  # the bench only; the engine itself never sees feed formats

    past: list[Story] = []
    new: dict[str, list[Story]] = {}
    for path, feed in news_files(root):
        parsed = feedparser.parse(path.read_bytes())
        stories = []
        for entry in parsed.entries:
            headline = _plain(entry.get("title", ""))
            summary = _plain(entry.get("summary", ""))
            if headline and len(summary.split()) >= 8:
                stories.append(Story(feed, headline, summary))
        past.extend(stories[0::2])
        if stories[1::2]:
            new.setdefault(feed, []).extend(stories[1::2])
    return Corpus(past, new)


def news_files(root: Path) -> list[tuple[Path, str]]:
    """The news feeds of the corpus and their publishers, as its MANIFEST.tsv labels them."""
    files = []
    for line in (root / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        columns = line.split("\t")
        if len(columns) >= 9 and columns[8].startswith("news"):
            files.append((root / columns[0], columns[4]))
    return files


def _plain(markup: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", markup)).split())


def make_items(corpus: Corpus, count: int, rng: random.Random) -> list[Document]:
    """News-like items: one feed's new headline over ~300 words of that feed's summaries."""
    feeds = sorted(corpus.new)
    # A feed sends items in proportion to how many stories it has.
    weights = [len(corpus.new[f]) for f in feeds]
    items = []
    for _ in range(count):
        feed = rng.choices(feeds, weights)[0]
        stories = corpus.new[feed]
        first = rng.randrange(len(stories))
        parts = []
        words = 0
        for i in range(len(stories)):
            summary = stories[(first + i) % len(stories)].summary
            parts.append(summary)
            words += word_count(summary)
            if words >= 300:
                break
        host = re.sub(r"[^a-z0-9.]", "", feed.rsplit(" - ", 1)[-1].lower()) or "feed.example"
        items.append(
            Document(
                title=stories[first].headline,
                summary=parts[0],
                content=" ".join(parts[1:]),
                feeds=(feed, rng.choice(["world", "politics", "business"])),
                url=f"https://{host}/{rng.randrange(10**6)}",
            )
        )
    return items


_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


def word_count(text: str) -> int:
    """Words of ``text``; Chinese and Japanese are written without spaces, and a word
    there is about two characters."""
    return len(text.split()) + len(_CJK_CHAR.findall(text)) // 2


def story_terms(story: Story) -> tuple[list[str], list[str]]:
    """A story's named entities and topical words, as an editor would pick them.

    Names are read from the summary, where a capital inside a sentence means a
    name (headlines are often in Title Case); topical words are longer lower-case
    words of either.
    """
    entities: list[str] = []
    topical: list[str] = []
    for text, names in ((story.summary, True), (story.headline, False)):
        for sentence in _SENTENCE_END.split(text):
            for i, word in enumerate(_WORD.findall(sentence)):
                if word.lower() in _STOP or len(word) < 3:
                    continue
                name = i > 0 and word[0].isupper() and not word.isupper()
                acronym = word.isupper() and 2 < len(word) <= 6
                if names and (name or acronym):
                    entities.append(word)
                elif len(word) >= 5 and word.islower():
                    topical.append(word)
    return list(dict.fromkeys(entities)), list(dict.fromkeys(topical))


class RuleMaker:
    """Standing rules written about past stories (see the module docstring)."""

    def __init__(self, corpus: Corpus, rng: random.Random) -> None:
        self.stories = [
            (story, *story_terms(story))
            for story in corpus.past
            if sum(map(len, story_terms(story))) >= 2
        ]
        # How many past stories use each word: a rule names what sets its subject
        # apart, so a story's distinctive words are likelier picks than its common ones.
        self.df: Counter[str] = Counter()
        for story in corpus.past:
            self.df.update({w.lower() for w in _WORD.findall(f"{story.headline} {story.summary}")})
        # Every word of the past stories as written, sorted: where other forms are found.
        self.words = {
            w for story in corpus.past for w in _WORD.findall(f"{story.headline} {story.summary}")
        }
        self.vocabulary = sorted(self.words)
        self.rng = rng

    def pick(self, words: list[str], count: int) -> list[str]:
        """``count`` of ``words`` without repeats, weighted by 1/sqrt(document frequency)."""
        rng = self.rng
        keyed = sorted(
            words, key=lambda w: rng.random() ** (self.df[w.lower()] ** 0.5), reverse=True
        )
        return keyed[:count]

    def phrase(self, story: Story) -> str | None:
        words = [re.sub(r'["“”]', "", w) for w in story.headline.split()]
        size = self.rng.choice((2, 2, 3))
        if len(words) < size:
            return None
        start = self.rng.randrange(0, len(words) - size + 1)
        text = " ".join(words[start : start + size])
        found = _WORD.findall(text)
        # A phrase an editor would quote: whole words, not only function words.
        content = [w for w in found if len(w) >= 4 and w.lower() not in _STOP]
        return f'"{text}"' if len(found) == size and content else None

    def variants(self, word: str) -> list[str]:
        """Other forms of ``word`` in the past stories: the word with up to 3 more letters,
        or the word less up to 3 of its last letters, never shorter than 5 letters
        (Armenia / Armenian, tariff / tariffs, challenge / challenges)."""
        found = []
        for cut in range(max(5, len(word) - 3), len(word)):
            if word[:cut] in self.words:
                found.append(word[:cut])
        i = bisect.bisect_left(self.vocabulary, word)
        while i < len(self.vocabulary) and self.vocabulary[i].startswith(word):
            longer = self.vocabulary[i]
            if 0 < len(longer) - len(word) <= 3 and len(word) >= 5:
                found.append(longer)
            i += 1
        return found

    def rule(self) -> str:
        """One standing rule: two or three AND-ed concepts, each a word with its other forms.

        A concept is what the rule is about, "who" or "what": one of the story's
        names or topical words, OR-ed with the forms of it the news also uses (the
        way an editor writes ``(Armenia OR Armenian)``), or a headline phrase, or
        a wildcard standing for all the forms.  Words of unrelated meaning are
        never OR-ed together.
        """
        rng = self.rng
        story, entities, topical = rng.choice(self.stories)
        pool = entities + topical
        budget = rng.randint(2, 6)  # terms in the whole query
        size = 2 if budget <= 4 else rng.choice((2, 3))
        picked = set(self.pick(pool, min(size, len(pool))))
        heads = [w for w in pool if w in picked]  # names first, then topical words
        concepts = [[head] for head in heads]
        terms = len(heads)
        for concept in concepts:
            for variant in self.variants(concept[0]):
                if terms >= budget:
                    break
                concept.append(variant)
                terms += 1
        if rng.random() < 0.30:
            phrase = self.phrase(story)
            if phrase is not None:
                concepts[0] = [phrase]
        if rng.random() < 0.10:
            concept = rng.choice(concepts)
            head = concept[0]
            if head[0] != '"' and len(head) >= 6:
                concept[:] = [head[: rng.randint(4, len(head) - 1)] + "*"]
        parts = [
            f"({' OR '.join(concept)})" if len(concept) > 1 else concept[0] for concept in concepts
        ]
        if rng.random() < 0.05 and len(parts) >= 2:
            parts[0:2] = [f"{parts[0]} NEAR/5 {parts[1]}"]
        elif rng.random() < 0.15:
            parts[0] = f"title:{parts[0]}" if parts[0].startswith("(") else f"title:({parts[0]})"
        query = " AND ".join(parts)
        if rng.random() < 0.20:
            _, _, other = rng.choice(self.stories)
            if other:
                query += f" AND NOT {rng.choice(other)}"
        return query


def write_word_frequencies(path: Path, corpus: Corpus, min_stories: int = 3) -> int:
    """Write rules/frequencies.py: how many news stories use each common folded word.

    The index files every rule under its rarest required term and needs to know
    which words are common.  The list is counted over the *past* stories only,
    never over the items the benchmark matches.  Regenerate with
    ``python -m bench rules --write-frequencies rules/frequencies.py``.
    """
    from rules.text import tokenize

    counts: Counter[str] = Counter()
    for story in corpus.past:
        counts.update(set(tokenize(story.headline)) | set(tokenize(story.summary)))
    common = sorted(
        (w for w, n in counts.items() if n >= min_stories), key=lambda w: (-counts[w], w)
    )
    lines = [
        '"""Document frequencies of common words in news, for choosing rare index terms.',
        "",
        "Generated by ``python -m bench rules --write-frequencies rules/frequencies.py``:",
        f"of {len(corpus.past)} news stories (headline and summary, folded words) from the",
        f"feeds in shared/corpus, how many use each word that at least {min_stories} use.",
        'A word not listed is rare.  Do not edit by hand."""',
        "",
        f"STORIES = {len(corpus.past)}",
        "",
        "# fmt: off",
        "COUNTS: dict[str, int] = {",
    ]
    lines.extend(f"    {w!r}: {counts[w]}," for w in common)
    lines += ["}", "# fmt: on", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(common)


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


EXPLAIN_SAMPLE = 100  # items whose hits are explained, and compared in full with brute force


def run(
    rule_counts: list[int], item_count: int, seed: int, naive_sample: int, passes: int = 3
) -> dict[str, Any]:
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
        with Timer() as build:
            ruleset = compile_rules(specs)
        if count == 10_000:
            compile_10k = build.cpu

        # As the daemon does: each item's hits are used (here: their rule names) and
        # dropped.  Keeping every hit alive would keep every tokenized item alive too.
        # Indexed and naive passes alternate and each side keeps its fastest pass, so
        # a burst of other work on the shared machine slows one pass, not the ratio.
        sample = items if count <= 10_000 else items[:naive_sample]
        indexed = naive = None
        for _ in range(passes):
            with Timer() as indexed_pass:
                fired = [[hit.rule for hit in ruleset.match(item)] for item in items]
            with Timer() as naive_pass:
                brute = [[hit.rule for hit in ruleset.match_brute_force(item)] for item in sample]
            indexed = indexed_pass if indexed is None else min(indexed, indexed_pass)
            naive = naive_pass if naive is None else min(naive, naive_pass)
        assert indexed is not None and naive is not None
        hit_count = sum(map(len, fired))
        fired_rules = {name for names in fired for name in names}
        # The point of the index is to change nothing: the same rules fire, and on the
        # first items the same explanations come out.
        mismatches = sum(a != b for a, b in zip(fired, brute, strict=False))
        checked = sample[:EXPLAIN_SAMPLE]
        mismatches += sum(ruleset.match(i) != ruleset.match_brute_force(i) for i in checked)

        # Explaining (matched terms and snippet) runs on first access, per hit.
        explained = [hit for item in items[:EXPLAIN_SAMPLE] for hit in ruleset.match(item)]
        with Timer() as explaining:
            for hit in explained:
                _ = hit.terms
        explained_hits = len(explained)
        del explained

        stages = stage_times(ruleset, items)

        items_per_s = len(items) / indexed.cpu
        naive_items_per_s = len(sample) / naive.cpu
        results.append(
            {
                "rules": count,
                "items": len(items),
                "items_per_s": round(items_per_s, 1),
                "naive_items_per_s": round(naive_items_per_s, 2),
                "naive_sample_items": len(sample),
                "speedup_vs_naive": round(items_per_s / naive_items_per_s, 1),
                "build_s": round(build.cpu, 3),
                "rss_mb": round(rss_mb(), 1),
                "hits": hit_count,
                "hits_per_item": round(hit_count / len(items), 2),
                "rules_fired_pct": round(100 * len(fired_rules) / count, 1),
                "items_per_rule_hit": round(count * len(items) / max(1, hit_count)),
                "explain_us_per_hit": round(1e6 * explaining.cpu / max(1, explained_hits), 1),
                "wall_items_per_s": round(len(items) / indexed.wall, 1),
                "wall_naive_items_per_s": round(len(sample) / naive.wall, 2),
                "wall_build_s": round(build.wall, 3),
                "stage_us_per_item": stages,
                # Both sides tokenize every item: were finding and evaluating the
                # candidates free, the speedup would still stop here.
                "speedup_ceiling": round(1e6 / naive_items_per_s / stages["tokenize"], 1),
                "mismatches": mismatches,
                "warnings": len(ruleset.warnings),
            }
        )
        del ruleset, fired, brute
    return {
        "benchmark": "rules",
        "seed": seed,
        "clock": "process CPU time (2 shared cores); wall_* keys give wall-clock",
        "passes": passes,
        "past_stories": len(corpus.past),
        "new_stories": sum(map(len, corpus.new.values())),
        "compile_10k_s": round(compile_10k, 3) if compile_10k is not None else None,
        "results": results,
    }


def stage_times(ruleset: RuleSet, items: list[Document]) -> dict[str, float]:
    """Where an indexed item's time goes: CPU microseconds per item for tokenizing
    (``Prepared``), selecting candidates (the index) and evaluating them (hits
    included), the best of 3 passes; and how many candidates the index passes.

    Reaches into the engine's internals on purpose: it is a measuring tool.
    """
    best = {"tokenize": 1e9, "candidates": 1e9, "evaluate": 1e9}
    index = ruleset._index
    evaluate = ruleset._evaluate
    clock = time.process_time
    candidate_count = decided_count = 0
    for _ in range(3):
        spent = dict.fromkeys(best, 0.0)
        candidate_count = decided_count = 0
        for item in items:
            start = clock()
            prepared = Prepared(item)
            prepared.all_tokens()
            tokenized = clock()
            candidates = index.candidates(prepared)
            selected = clock()
            evaluate(prepared, candidates, indexed=True)
            spent["tokenize"] += tokenized - start
            spent["candidates"] += selected - tokenized
            spent["evaluate"] += clock() - selected
            candidate_count += len(candidates)
            decided_count += sum(p in index.decided for p in candidates)
        best = {k: min(v, spent[k]) for k, v in best.items()}
    result = {k: round(1e6 * v / len(items), 1) for k, v in best.items()}
    result["candidates_per_item"] = round(candidate_count / len(items), 2)
    result["decided_per_item"] = round(decided_count / len(items), 2)
    return result


class Timer:
    """CPU and wall seconds of a block; timers order by CPU seconds."""

    cpu = wall = 0.0

    def __lt__(self, other: Timer) -> bool:
        return self.cpu < other.cpu

    def __enter__(self) -> Timer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall


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
    parser.add_argument(
        "--passes", type=int, default=3, help="timed passes per side; the fastest counts"
    )
    parser.add_argument(
        "--write-frequencies",
        type=Path,
        metavar="PATH",
        help="write the index's word-frequency module (rules/frequencies.py) and exit",
    )
    args = parser.parse_args(argv)
    if args.write_frequencies is not None:
        written = write_word_frequencies(args.write_frequencies, read_corpus())
        print(f"{written} words written to {args.write_frequencies}")
        return 0
    counts = [int(c) for c in args.rules.split(",")]
    report = run(counts, args.items, args.seed, args.naive_sample, max(1, args.passes))

    print(
        "matching = which rules fire per item, tokenization included; CPU time of one core, "
        f"fastest of {report['passes']} alternating passes per side"
    )
    header = (
        f"{'rules':>8} {'build s':>8} {'items/s':>9} {'naive/s':>9} {'speedup':>8} "
        f"{'RSS MB':>7} {'hits/item':>9} {'fired %':>8} {'1 hit in':>9} {'explain':>10} "
        f"{'diff':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        print(
            f"{r['rules']:>8} {r['build_s']:>8.2f} {r['items_per_s']:>9.0f} "
            f"{r['naive_items_per_s']:>9.1f} {r['speedup_vs_naive']:>7.1f}x "
            f"{r['rss_mb']:>7.0f} {r['hits_per_item']:>9.2f} {r['rules_fired_pct']:>7.1f}% "
            f"{r['items_per_rule_hit']:>9} {r['explain_us_per_hit']:>7.0f} us "
            f"{r['mismatches']:>5}"
        )
    print(
        "naive/s: every rule's matcher on its own per item; fired %: rules that fired at "
        "least once;\n1 hit in: items per hit of one rule; explain: matched terms + snippet, "
        "per hit, on first access (not in items/s)"
    )
    print("where an indexed item's time goes (CPU us per item, best of 3 passes):")
    for r in report["results"]:
        st = r["stage_us_per_item"]
        print(
            f"{r['rules']:>8}: tokenize {st['tokenize']:.0f}, candidates {st['candidates']:.0f} "
            f"({st['candidates_per_item']:.1f} per item, {st['decided_per_item']:.1f} decided "
            f"by the index), evaluate {st['evaluate']:.0f}; speedup ceiling "
            f"{r['speedup_ceiling']:.1f}x"
        )
    print("speedup ceiling: naive time per item / tokenize time per item, the speedup if "
          "finding and\nevaluating candidates cost nothing (both sides tokenize every item)")
    if report["compile_10k_s"] is not None:
        print(f"compiling 10,000 rules: {report['compile_10k_s']:.2f} s")
    print(json.dumps(report))
    return 1 if any(r["mismatches"] for r in report["results"]) else 0
