"""Deterministic synthetic product records: the same seed always yields the same rows.

Pure standard library and independent of Runyard, so benchmarks can regenerate exactly what a
run pushed::

    from records import iter_chunks
    for chunk in iter_chunks(count=1_000_000, seed=1, chunk_size=1000):
        ...

A record is about 750 bytes as compact JSON, with 18 fields: ids, text, numbers, a boolean, two
lists, a nested address object and two ISO-8601 timestamps. Rows are generated one after
another from a single ``random.Random(seed)`` stream, so the chunk size never changes them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import islice
from typing import Any

Record = dict[str, Any]

FIELDS: list[tuple[str, str, str]] = [
    ("id", "integer", "Row number, 1-based"),
    ("sku", "string", "Stock keeping unit, e.g. SKU-3F9A0C12"),
    ("name", "string", "Product name"),
    ("brand", "string", "Brand"),
    ("url", "string", "Product page URL"),
    ("image_url", "string", "Main image URL"),
    ("price", "number", "Price in currency (whole yen for JPY)"),
    ("currency", "string", "ISO 4217 currency code"),
    ("rating", "number", "Average rating, 1.0 to 5.0"),
    ("review_count", "integer", "Number of reviews"),
    ("in_stock", "boolean", "Whether stock_quantity is above zero"),
    ("stock_quantity", "integer", "Units in stock"),
    ("categories", "array", "Category path, broadest first"),
    ("tags", "array", "Two to four tags"),
    ("description", "string", "Marketing description"),
    (
        "address",
        "object",
        "Warehouse address: street, city, region, postal_code, country, lat, lon",
    ),
    ("created_at", "string", "Creation time, ISO 8601 UTC"),
    ("updated_at", "string", "Last update time, ISO 8601 UTC, not before created_at"),
]

BRANDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka",
    "Soylent", "Cyberdyne", "Tyrell", "Gringotts", "Oscorp", "Aperture", "Monarch", "Nakatomi",
    "Pied Piper", "Blue Sun", "Duff", "Kwik-E", "Dunder", "Sterling", "Prestige", "Massive",
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adventure", "Proseware",
]  # fmt: skip

ADJECTIVES = [
    "Ultra", "Pro", "Compact", "Classic", "Smart", "Eco", "Deluxe", "Mini", "Max", "Lite",
    "Premium", "Rugged", "Slim", "Turbo", "Quiet", "Wireless", "Portable", "Heavy-Duty",
    "Modern", "Vintage", "Essential", "Advanced", "Everyday", "Signature",
]  # fmt: skip

CATEGORY_TREE: dict[str, dict[str, list[str]]] = {
    "Electronics": {
        "Audio": ["Headphones", "Speakers", "Microphones", "Soundbars"],
        "Computers": ["Laptops", "Monitors", "Keyboards", "Mice"],
        "Cameras": ["Action Cameras", "Lenses", "Tripods"],
    },
    "Home & Kitchen": {
        "Kitchen": ["Blenders", "Kettles", "Cookware", "Knives"],
        "Furniture": ["Chairs", "Desks", "Shelves"],
        "Lighting": ["Desk Lamps", "Floor Lamps", "Bulbs"],
    },
    "Sports & Outdoors": {
        "Camping": ["Tents", "Sleeping Bags", "Lanterns"],
        "Fitness": ["Dumbbells", "Yoga Mats", "Kettlebells"],
        "Cycling": ["Helmets", "Bike Lights", "Pumps"],
    },
    "Garden": {
        "Tools": ["Shovels", "Pruners", "Hoses"],
        "Outdoor Living": ["Grills", "Parasols", "Planters"],
    },
    "Toys & Games": {
        "Board Games": ["Strategy Games", "Party Games"],
        "Building Sets": ["Bricks", "Model Kits"],
    },
}

# (city, region, country, postal code prefix, latitude, longitude)
CITIES: list[tuple[str, str, str, str, float, float]] = [
    ("Springfield", "IL", "US", "627", 39.7817, -89.6501),
    ("Portland", "OR", "US", "972", 45.5152, -122.6784),
    ("Austin", "TX", "US", "787", 30.2672, -97.7431),
    ("Columbus", "OH", "US", "432", 39.9612, -82.9988),
    ("Denver", "CO", "US", "802", 39.7392, -104.9903),
    ("Raleigh", "NC", "US", "276", 35.7796, -78.6382),
    ("Toronto", "ON", "CA", "M5V", 43.6532, -79.3832),
    ("Vancouver", "BC", "CA", "V6B", 49.2827, -123.1207),
    ("Manchester", "ENG", "GB", "M1", 53.4808, -2.2426),
    ("Leeds", "ENG", "GB", "LS1", 53.8008, -1.5491),
    ("Lyon", "ARA", "FR", "690", 45.7640, 4.8357),
    ("Hamburg", "HH", "DE", "201", 53.5511, 9.9937),
    ("Rotterdam", "ZH", "NL", "301", 51.9244, 4.4777),
    ("Porto", "13", "PT", "400", 41.1579, -8.6291),
    ("Brno", "64", "CZ", "602", 49.1951, 16.6068),
    ("Osaka", "27", "JP", "530", 34.6937, 135.5023),
]

STREETS = [
    "Maple Ave", "Oak St", "Pine Rd", "Cedar Ln", "Elm St", "Harbor Blvd", "Mill Rd",
    "Station Rd", "Market St", "Bridge St", "Park Ave", "Lake Dr", "Hill St", "River Rd",
    "Church St", "Industrial Way", "Commerce Dr", "Depot St", "Canal St", "Foundry Ln",
]  # fmt: skip

TAGS = [
    "bestseller", "new", "sale", "eco-friendly", "gift-idea", "limited", "clearance",
    "staff-pick", "bundle", "refurbished", "imported", "handmade", "durable", "lightweight",
    "waterproof", "energy-saving", "award-winning", "trending",
]  # fmt: skip

SENTENCES = [
    "Designed for daily use and built to last through years of hard work.",
    "Backed by a two-year warranty and friendly customer support.",
    "Ships in recyclable packaging with everything you need to get started.",
    "Tested by our team in real homes, not just in the lab.",
    "A customer favourite for its reliability and thoughtful details.",
    "Easy to set up in minutes, with no tools required.",
    "Made from responsibly sourced materials wherever possible.",
    "Pairs well with the rest of the collection for a consistent look.",
    "Compact enough to store anywhere, yet sturdy where it counts.",
    "Rated highly for value by reviewers across every region we serve.",
]

# The rest are in the euro area. Yen have no minor unit, so JPY prices are whole numbers.
CURRENCIES = {"US": "USD", "CA": "CAD", "GB": "GBP", "JP": "JPY"}

_CATEGORY_PATHS: list[tuple[str, str, str]] = [
    (top, mid, leaf)
    for top, mids in CATEGORY_TREE.items()
    for mid, leaves in mids.items()
    for leaf in leaves
]
_CREATED_SPAN_DAYS = 3 * 365
_UPDATE_SPAN_DAYS = 400

# Formatting numbers per row is the slow part of a record (this is the benchmark's data
# source), so every date, clock time and two-digit suffix a record can carry is looked up.
_DATES = [
    (date(2022, 1, 1) + timedelta(days=i)).isoformat()
    for i in range(_CREATED_SPAN_DAYS + _UPDATE_SPAN_DAYS)
]
_CLOCK = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SECONDS = [f"{s:02d}Z" for s in range(60)]
_TWO_DIGITS = [f"{i:02d}" for i in range(100)]


def _slug(text: str) -> str:
    return text.lower().replace(" & ", "-").replace(" ", "-")


def _singular(leaf: str) -> str:
    # Good enough for product names: "Blenders" → "Blender", "Headphones" stays plural-free.
    return leaf[:-1] if leaf.endswith("s") and not leaf.endswith("ss") else leaf


def iter_records(count: int, seed: int = 1, start_id: int = 1) -> Iterator[Record]:
    """``count`` records with ids ``start_id``… from the ``random.Random(seed)`` stream."""
    rnd = random.Random(seed).random
    # (top, mid, leaf, singular, lower-case leaf, slug) for each category path
    paths = [
        (*path, _singular(path[2]), path[2].lower(), _slug(path[2])) for path in _CATEGORY_PATHS
    ]
    brands = [(brand, _slug(brand)) for brand in BRANDS]
    adjectives = [(adjective, _slug(adjective)) for adjective in ADJECTIVES]
    cities = [(*city, CURRENCIES.get(city[2], "EUR")) for city in CITIES]
    n_tags = len(TAGS)
    # Every set of two to four distinct tags that a start, a stride and a length pick out.
    tag_sets = [
        tuple(TAGS[(first + k * step) % n_tags] for k in range(length))
        for first in range(n_tags)
        for step in range(1, n_tags)
        for length in (2, 3, 4)
        if len({(first + k * step) % n_tags for k in range(length)}) == length
    ]
    streets, sentences, two_digits = STREETS, SENTENCES, _TWO_DIGITS
    dates, clock, seconds = _DATES, _CLOCK, _SECONDS
    n_brands, n_adj, n_paths = len(brands), len(adjectives), len(paths)
    n_cities, n_streets, n_sent = len(cities), len(streets), len(sentences)
    n_tag_sets = len(tag_sets)
    created_span = _CREATED_SPAN_DAYS * 86400
    update_span = (_UPDATE_SPAN_DAYS - 1) * 86400
    for row_id in range(start_id, start_id + count):
        top, mid, leaf, noun, leaf_lower, leaf_slug = paths[int(rnd() * n_paths)]
        brand, brand_slug = brands[int(rnd() * n_brands)]
        adjective, adjective_slug = adjectives[int(rnd() * n_adj)]
        model = 100 + int(rnd() * 900)
        name = f"{brand} {adjective} {noun} {model}"
        sku_bits = int(rnd() * 4294967296)
        slug = f"{brand_slug}-{adjective_slug}-{leaf_slug}-{model}"
        city, region, country, postal, lat, lon, currency = cities[int(rnd() * n_cities)]
        price_cents = 499 + int(rnd() * rnd() * 99_500)
        stock = int(rnd() * 250) - 25
        if stock < 0:
            stock = 0
        row_tags = list(tag_sets[int(rnd() * n_tag_sets)])
        sentence = sentences[int(rnd() * n_sent)]
        created = int(rnd() * created_span)
        updated = created + int(rnd() * update_span)
        c_day, c_rest = divmod(created, 86400)
        u_day, u_rest = divmod(updated, 86400)
        yield {
            "id": row_id,
            "sku": f"SKU-{sku_bits:08X}",
            "name": name,
            "brand": brand,
            "url": f"https://shop.example.com/p/{row_id}/{slug}",
            "image_url": f"https://cdn.example.com/img/{sku_bits:08x}/{slug}.jpg",
            "price": price_cents if currency == "JPY" else price_cents / 100,
            "currency": currency,
            "rating": (10 + int(rnd() * 41)) / 10,
            "review_count": int(rnd() * rnd() * 5000),
            "in_stock": stock > 0,
            "stock_quantity": stock,
            "categories": [top, mid, leaf],
            "tags": row_tags,
            "description": f"{adjective} {leaf_lower} by {brand}. {sentence}",
            "address": {
                "street": f"{1 + int(rnd() * 9999)} {streets[int(rnd() * n_streets)]}",
                "city": city,
                "region": region,
                "postal_code": postal + two_digits[int(rnd() * 100)],
                "country": country,
                # Whole hundred-thousandths divided once: exact short decimals, unlike round().
                "lat": int(lat * 100_000 + rnd() * 20_000 - 10_000) / 100_000,
                "lon": int(lon * 100_000 + rnd() * 20_000 - 10_000) / 100_000,
            },
            "created_at": dates[c_day] + clock[c_rest // 60] + seconds[c_rest % 60],
            "updated_at": dates[u_day] + clock[u_rest // 60] + seconds[u_rest % 60],
        }


def iter_chunks(count: int, seed: int = 1, chunk_size: int = 1000) -> Iterator[list[Record]]:
    """The same records as ``iter_records``, in lists of at most ``chunk_size``."""
    records = iter_records(count, seed)
    while chunk := list(islice(records, chunk_size)):
        yield chunk
