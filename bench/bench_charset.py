"""Benchmark: the encoding reader's speed on the realdata corpus and its accuracy per code page.

    python bench/bench_charset.py [-n RUNS] [--compare]

Speed: `monitor.charset.read_encoding` over every capture in ../shared/realdata (feeds,
pages, API answers), and how many of them needed the detector at all; beside it the
detector (chardet) alone on every file, as if it ran on all of them.

Accuracy: the news in fixtures/charset/news.toml, encoded into each code page outlets use
(tests/charset_samples.py), read by `monitor.feeds.document.read_feed` four ways: a whole
feed with no declaration, a one-item feed with none, a feed that declares it, and one that
wrongly declares UTF-8. A reading is right when every headline and summary comes back letter
for letter. `--compare` adds charset-normalizer and cchardet, where installed, on the
undeclared feeds (the choice of detector is explained in monitor/charset.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import charset  # noqa: E402
from monitor.feeds.document import read_feed  # noqa: E402
from tests.charset_samples import Sample, samples  # noqa: E402

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
URL = "https://news.example.org/feed.xml"


def best_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up: imports, the detector's models
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def speed(runs: int) -> None:
    if not REALDATA.is_dir():
        print(f"realdata: not present at {REALDATA}, skipped")
        return
    files = [p for p in sorted(REALDATA.glob("**/*")) if p.is_file() and p.suffix != ".tsv"]
    bodies = [(p, p.read_bytes()) for p in files]
    detected = []
    real_detect = charset._detect

    def counting(body: bytes, among: list[str] | None = None) -> str | None:
        detected.append(body)
        return real_detect(body, among)

    charset._detect = counting
    for path, body in bodies:
        charset.read_encoding(body, html=path.suffix == ".html")
    charset._detect = real_detect
    size = sum(len(b) for _, b in bodies)
    ours = best_ms(
        lambda: [charset.read_encoding(b, html=p.suffix == ".html") for p, b in bodies], runs
    )
    alone = best_ms(lambda: [charset._detect(b) for _, b in bodies], max(1, runs // 3))
    print(f"realdata: {len(bodies)} files, {size / 1e6:.1f} MB")
    print(
        f"read_encoding over all of them:   {ours:8.1f} ms  ({len(detected)} needed the detector)"
    )
    print(f"the detector alone on every file: {alone:8.1f} ms")


def texts_read(body: bytes, content_type: str | None = None) -> list[str]:
    posts, _ = read_feed(body, URL, content_type)
    return [_letters(t) for p in posts for t in (p.title, p.text) if t]


def _letters(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def accuracy(compare: bool) -> None:
    rows = []
    ways: dict[str, Callable[[Sample], bool]] = {
        "undeclared": lambda s: texts_read(s.rss()) == _want(s),
        "one item": lambda s: texts_read(s.rss(items=1)) == _want(s, 1),
        "declared": lambda s: texts_read(s.rss(declare=s.code_page)) == _want(s),
        "says UTF-8": lambda s: texts_read(s.rss(declare="utf-8")) == _want(s),
    }
    others = _other_detectors() if compare else {}
    for sample in samples():
        row = [sample.label] + ["ok" if way(sample) else "WRONG" for way in ways.values()]
        for detect in others.values():
            row.append("ok" if _decodes(sample, detect(sample.rss())) else "WRONG")
        rows.append(row)
    head = ["code page", *ways, *others]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    for i, name in enumerate(head[1:], start=1):
        right = sum(r[i] == "ok" for r in rows)
        print(f"{name}: {right}/{len(rows)} read right")


def _want(sample: Sample, items: int | None = None) -> list[str]:
    return [_letters(t) for item in sample.items[:items] for t in item]


def _decodes(sample: Sample, encoding: str | None) -> bool:
    try:
        text = unicodedata.normalize("NFC", sample.rss().decode(encoding or ""))
    except (LookupError, UnicodeDecodeError):
        return False
    return all(t in text for t in sample.texts())


def _other_detectors() -> dict[str, Callable[[bytes], str | None]]:
    found: dict[str, Callable[[bytes], str | None]] = {}
    try:
        import charset_normalizer

        def normalizer(body: bytes) -> str | None:
            best = charset_normalizer.from_bytes(body).best()
            return best.encoding if best else None

        found["charset-normalizer"] = normalizer
    except ImportError:
        pass
    try:
        import cchardet

        found["cchardet"] = lambda body: cchardet.detect(body)["encoding"]
    except ImportError:
        pass
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=5)
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    speed(args.runs)
    accuracy(args.compare)


if __name__ == "__main__":
    main()
