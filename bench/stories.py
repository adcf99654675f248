"""Story assignment cost with a full window of stories in memory.

    python -m bench stories [--stories 100000] [--probes 2000] [--seed 5]

The window is filled with synthetic stories whose words follow the real word
frequencies of the news feeds in ``../shared/corpus/feeds`` (titles of 5-12 words,
leads of 20-45 words, drawn from the corpus's own title and lead vocabularies), so
common words have long posting lists as they would in a real 48 h window. Probes
are real corpus items, half of them edited rewrites of a story already in the
window (they must join it), half new.

Measured: ``fingerprint`` + ``StoryIndex.match`` + ``add_story``/``add_member`` per
probe (the whole in-memory assignment; the database insert is the store's cost and
not included), as wall time (p50/p95/p99/max) and as this thread's CPU time (what the
assignment costs when the cores are not shared with other work), and the resident
memory the window adds. Baselines in the same run:

- a brute-force scan with rapidfuzz ``process.extractOne`` over every story's
  normalised title (rapidfuzz's C++ inner loop; skipped if it is not installed);
- the cost of computing one 128-permutation MinHash signature in Python, which an
  LSH index would pay per item before any lookup.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import csv
import gc
import itertools
import json
import random
import resource
import statistics
import sys
import time
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.parse import FeedParseError, parse_feed
from monitor.stories import StoryIndex, fingerprint, title_words

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
T0 = datetime(2026, 2, 18, tzinfo=UTC)


def rss_mb() -> float:
    # Linux reports ru_maxrss in KiB; the current RSS is what we want, from /proc.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(ordered: list[float], share: float) -> float:
    """The value below which ``share`` of the sorted timings fall (nearest rank)."""
    return ordered[max(0, int(len(ordered) * share) - 1)]


def corpus_items() -> list[tuple[str, str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    rows = list(csv.DictReader(manifest.open(encoding="utf-8"), delimiter="\t"))
    items: list[tuple[str, str, str]] = []
    for row in rows:
        if not row["notes"].startswith("news"):
            continue
        try:
            feed = parse_feed((CORPUS / row["file"]).read_bytes(), url="https://example.org/")
        except FeedParseError:
            continue
        items += [(i.title, i.summary, i.link or "") for i in feed.items if i.title]
    return items


def vocabulary(texts: list[str]) -> tuple[list[str], list[int]]:
    """Words and their cumulative counts, for ``random.choices(cum_weights=...)``."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text.split())
    words = list(counts)
    return words, list(itertools.accumulate(counts[w] for w in words))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench stories")
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    items = corpus_items()
    title_vocab = vocabulary([t for t, _, _ in items])
    lead_vocab = vocabulary([s for _, s, _ in items if s])

    def synthetic(n: int) -> tuple[str, str]:
        title_words_, title_cum = title_vocab
        lead_words, lead_cum = lead_vocab
        title = " ".join(rng.choices(title_words_, cum_weights=title_cum, k=rng.randint(5, 12)))
        lead = " ".join(rng.choices(lead_words, cum_weights=lead_cum, k=rng.randint(20, 45)))
        return title, lead

    texts = [synthetic(n) for n in range(args.stories)]
    gc.collect()
    before = rss_mb()
    index = StoryIndex()
    started = time.perf_counter()
    for n, (title, lead) in enumerate(texts):
        seen = T0 + timedelta(seconds=n * 172_800 / args.stories)
        index.add_story(n, fingerprint(title=title, lead=lead,
                                       link=f"https://site{n % 97}.example/{n}"),
                        feed=f"feed{n % 500}", seen_at=seen)
    load_s = time.perf_counter() - started
    gc.collect()
    state_mb = rss_mb() - before

    # Probes: real items; half are first planted as stories and then come back rewritten.
    now = T0 + timedelta(hours=47)
    probes = rng.sample(items, min(args.probes, len(items)))
    planted = 0
    for k, (title, lead, _link) in enumerate(probes[::2]):
        index.add_story(args.stories + k, fingerprint(title=title, lead=lead, link=None),
                        feed="planted", seen_at=now)
        planted += 1
    timings: list[float] = []
    cpu_timings: list[float] = []
    joined = new = 0
    for k, (title, lead, link) in enumerate(probes):
        if k % 2 == 0:
            title = f"UPDATE 1-{title} - Reuters"
        started = time.perf_counter()
        cpu_started = time.thread_time()
        item = fingerprint(title=title, lead=lead, link=link or None)
        found = index.match(item, feed="probe", seen_at=now)
        if found is None:
            index.add_story(10 * args.stories + k, item, feed="probe", seen_at=now)
            new += 1
        else:
            index.add_member(found.story_id, item, feed="probe")
            joined += 1
        timings.append((time.perf_counter() - started) * 1000)
        cpu_timings.append((time.thread_time() - cpu_started) * 1000)
    timings.sort()
    cpu_timings.sort()
    p50 = statistics.median(timings)
    p95 = percentile(timings, 0.95)
    p99 = percentile(timings, 0.99)
    cpu_p50, cpu_p99 = statistics.median(cpu_timings), percentile(cpu_timings, 0.99)

    # Baseline 1: brute force with rapidfuzz over every title.
    rapidfuzz_ms: float | None = None
    try:
        from rapidfuzz import fuzz, process
    except ImportError:
        pass
    else:
        choices = [" ".join(title_words(t)) for t, _ in texts]
        sample = probes[:20]
        started = time.perf_counter()
        for title, _, _ in sample:
            process.extractOne(" ".join(title_words(title)), choices,
                               scorer=fuzz.token_set_ratio, score_cutoff=80)
        rapidfuzz_ms = (time.perf_counter() - started) * 1000 / len(sample)

    # Baseline 2: one 128-permutation MinHash signature of word 3-shingles, in Python.
    perms = [(rng.randrange(1, 2**31 - 1) | 1, rng.randrange(0, 2**31 - 1)) for _ in range(128)]
    prime = 2**31 - 1
    sample = probes[:200]
    started = time.perf_counter()
    for title, lead, _ in sample:
        words = (title + " " + lead).lower().split()
        shingles = [zlib.crc32(" ".join(words[i:i + 3]).encode())
                    for i in range(max(1, len(words) - 2))]
        [min((a * s + b) % prime for s in shingles) for a, b in perms]
    minhash_ms = (time.perf_counter() - started) * 1000 / len(sample)

    figures = {
        "stories": args.stories,
        "probes": len(probes),
        "joined": joined,
        "new": new,
        "planted": planted,
        "assign_ms_p50": round(p50, 4),
        "assign_ms_p95": round(p95, 4),
        "assign_ms_p99": round(p99, 4),
        "assign_ms_max": round(timings[-1], 4),
        "assign_cpu_ms_p50": round(cpu_p50, 4),
        "assign_cpu_ms_p99": round(cpu_p99, 4),
        "load_s": round(load_s, 2),
        "state_mb": round(state_mb, 1),
        "rss_mb": round(rss_mb(), 1),
        "baseline_rapidfuzz_scan_ms": None if rapidfuzz_ms is None else round(rapidfuzz_ms, 2),
        "baseline_minhash128_signature_ms": round(minhash_ms, 3),
        "cores_shared": True,
    }
    print(f"{'stories in window':34} {args.stories:>10}")
    print(f"{'probes (joined / new)':34} {len(probes):>10}  ({joined} / {new}; "
          f"{planted} planted to be joined)")
    print(f"{'assign p50 / p95 / p99 / max (ms)':34} {p50:>10.3f}  / {p95:.3f} / {p99:.3f} / "
          f"{timings[-1]:.3f}")
    print(f"{'  of it on this thread (CPU ms)':34} {cpu_p50:>10.3f}  p50, {cpu_p99:.3f} p99")
    print(f"{'window load (s)':34} {load_s:>10.2f}")
    print(f"{'window state (MB RSS added)':34} {state_mb:>10.1f}")
    print(f"{'process RSS (MB)':34} {rss_mb():>10.1f}")
    shown = "not installed" if rapidfuzz_ms is None else f"{rapidfuzz_ms:.2f}"
    print(f"{'baseline: rapidfuzz scan (ms/item)':34} {shown:>10}")
    print(f"{'baseline: MinHash-128 sig (ms/item)':34} {minhash_ms:>10.3f}")
    print("(2 cores shared with other test runs: timings are upper bounds)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
