"""Deterministic, realistic result rows for the benchmarks (~15 fields, some nested, ~700 B)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import orjson

WORDS = [
    "alpha",
    "bravo",
    "copper",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lumen",
    "meadow",
    "nickel",
    "orchid",
    "pepper",
    "quartz",
    "russet",
    "sable",
    "timber",
    "umber",
    "velvet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
    "café",
    "façade",
    "naïve",
    "東京",
    "Zürich",
    "São",
]
CITIES = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima", "Oslo", "Hanoi"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def row(i: int, rng: random.Random) -> dict[str, object]:
    return {
        "id": i,
        "url": f"https://shop.example.com/p/{i}-{rng.choice(WORDS)}",
        "title": _words(rng, 6).title(),
        "description": _words(rng, 40),
        "price": round(rng.uniform(1, 2000), 2),
        "currency": rng.choice(["EUR", "USD", "JPY"]),
        "rating": round(rng.uniform(1, 5), 1),
        "reviews_count": rng.randrange(0, 50_000),
        "in_stock": rng.random() < 0.8,
        "categories": [rng.choice(WORDS) for _ in range(3)],
        "seller": {
            "name": _words(rng, 2).title(),
            "rating": round(rng.uniform(1, 5), 2),
            "location": rng.choice(CITIES),
        },
        "images": [f"https://img.example.com/{i}/{k}.jpg" for k in range(2)],
        "sku": f"SKU-{rng.randrange(10**9):09d}",
        "brand": rng.choice(WORDS).title() if rng.random() < 0.9 else None,
        "scraped_at": f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00Z",
    }


def rows(n: int, seed: int = 7) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(n):
        yield orjson.dumps(row(i, rng))


def write_jsonl(path: Path, n: int) -> int:
    """Write ``n`` rows; returns the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for text in rows(n):
            f.write(text + b"\n")
    return path.stat().st_size
