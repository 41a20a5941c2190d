"""Ids, names and texts of simulated items and reviews, drawn from the latent topics
(dimension t of an item's factor vector is topic t), so side information carries signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
TITLE_WORDS = ("Night", "River", "Star", "Shadow", "City", "Heart", "Storm", "Game", "Dream", "Road", "King", "Secret")

ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
UPPER = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


def random_ids(rng: np.random.Generator, n: int, length: int, prefix: str = "", alphabet: np.ndarray = ALPHABET) -> np.ndarray:
    """``n`` distinct random ids (unicode array), vectorised."""
    out = np.empty(0, dtype=f"U{length + len(prefix)}")
    while len(out) < n:
        codes = alphabet[rng.integers(0, len(alphabet), (n - len(out) + 16, length))]
        fresh = np.char.add(prefix, codes.view(f"S{length}").ravel().astype(f"U{length}"))
        out = pd.unique(np.concatenate([out, fresh]))
        out = np.asarray(out, dtype=f"U{length + len(prefix)}")
    return out[:n]


TOPICS = {
    "yelp": [
        ("Pizza", "Italian", ["pizza", "pasta", "wood-fired crust", "marinara", "tiramisu"]),
        ("Sushi Bars", "Japanese", ["sushi", "sashimi", "ramen", "miso soup", "omakase"]),
        ("Mexican", "Tacos", ["tacos", "salsa verde", "burritos", "margaritas", "churros"]),
        ("Coffee & Tea", "Cafes", ["espresso", "latte art", "pastries", "cold brew", "croissants"]),
        ("Bars", "Nightlife", ["craft beer", "cocktails", "happy hour", "live music", "bartenders"]),
        ("Hair Salons", "Beauty & Spas", ["haircut", "color", "stylist", "blowout", "manicure"]),
        ("Auto Repair", "Automotive", ["oil change", "brakes", "mechanic", "tires", "diagnostics"]),
        ("Breakfast & Brunch", "American (New)", ["pancakes", "eggs benedict", "mimosas", "brunch", "bacon"]),
        ("Chinese", "Dim Sum", ["dumplings", "noodles", "dim sum", "fried rice", "bao"]),
        ("Fitness & Instruction", "Gyms", ["spin class", "trainers", "yoga", "weights", "classes"]),
        ("Bakeries", "Desserts", ["cupcakes", "sourdough", "macarons", "cakes", "gelato"]),
        ("Indian", "Vegetarian", ["curry", "naan", "biryani", "masala", "samosas"]),
    ],
    "amazon": [
        ("Headphones", "Audio", ["noise cancelling", "bass", "earbuds", "over-ear", "bluetooth audio"]),
        ("Camera & Photo", "Lenses", ["lens", "tripod", "autofocus", "megapixel", "mirrorless"]),
        ("Computers & Accessories", "Laptops", ["laptop", "SSD", "RAM", "keyboard", "USB-C hub"]),
        ("Cell Phones & Accessories", "Cases", ["phone case", "screen protector", "charger", "MagSafe", "cable"]),
        ("Television & Video", "TVs", ["4K", "HDR", "soundbar", "streaming", "remote"]),
        ("Car Electronics", "GPS", ["dash cam", "GPS", "car charger", "FM transmitter", "backup camera"]),
        ("Home Audio", "Speakers", ["speaker", "subwoofer", "receiver", "turntable", "amplifier"]),
        ("Video Games", "Gaming Accessories", ["controller", "gaming mouse", "headset", "RGB", "mechanical keys"]),
        ("Networking", "Routers", ["router", "mesh Wi-Fi", "ethernet", "range extender", "modem"]),
        ("Wearable Technology", "Smartwatches", ["smartwatch", "fitness tracker", "heart rate", "band", "GPS watch"]),
        ("Power Accessories", "Batteries", ["battery", "power bank", "surge protector", "AA batteries", "solar charger"]),
        ("eBook Readers", "Tablets", ["e-reader", "tablet", "stylus", "cover", "e-ink"]),
    ],
}
BRANDS = ("Sonix", "Veltro", "Auralis", "Kinetek", "Lumio", "Nordvik", "Photon & Co", "Zentra", "Brightline", "Calyx", "Orbis", "Tessel")
NAME_WORDS = ("Golden", "Blue", "Urban", "Little", "Happy", "Old Town", "Sunset", "Lucky", "Green", "Royal", "Café", "Corner")
CITIES = (
    ("Philadelphia", "PA"), ("Tucson", "AZ"), ("Tampa", "FL"), ("Indianapolis", "IN"), ("Nashville", "TN"),
    ("New Orleans", "LA"), ("Reno", "NV"), ("Edmonton", "AB"), ("Saint Louis", "MO"), ("Santa Barbara", "CA"), ("Boise", "ID"),
)  # fmt: skip
_SENTIMENT = {
    1: ("Terrible experience.", "Would not recommend the", "Very disappointed with the"),
    2: ("Not great.", "Below average", "Expected more from the"),
    3: ("It was okay.", "Decent but forgettable", "Average"),
    4: ("Really good!", "Solid choice for", "Enjoyed the"),
    5: ("Absolutely loved it!", "Best", "Outstanding, fantastic"),
}


def topic_order(item_factors: np.ndarray) -> np.ndarray:
    return np.argsort(-item_factors, axis=1, kind="stable")


def item_words(rng: np.random.Generator, item_factors: np.ndarray, vocab: list[list[str]], n_words: int) -> list[str]:
    """Per item, ``n_words`` words drawn from the topics, weighted by softmax(2 v_i)."""
    n, d = item_factors.shape
    w = np.exp(2.0 * (item_factors - item_factors.max(axis=1, keepdims=True)))
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
    topics = (rng.random((n, n_words))[:, :, None] > cdf[:, None, :]).sum(axis=2).clip(0, d - 1)
    slots = rng.integers(0, 5, (n, n_words))
    flat = np.array([word for words in vocab for word in words], dtype=object)
    words = flat[topics * 5 + slots]
    return [", ".join(dict.fromkeys(row)) for row in words]


def review_texts(like: str, stars: np.ndarray, top_topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One short review per interaction from a phrase table (rating x topic x variant)."""
    topics = TOPICS[like]
    table = []
    for r in range(1, 6):
        for _, _, words in topics:
            for v in range(3):
                opener = _SENTIMENT[r][v]
                table.append(f"{opener} {words[v]} here. The {words[(v + 1) % 5]} and {words[(v + 2) % 5]} were "
                             f"{'great' if r >= 4 else 'fine' if r == 3 else 'poor'}.\n\nRated {r}/5 — would {'' if r >= 3 else 'not '}return.")  # fmt: skip
    table = np.array(table, dtype=object)
    variant = rng.integers(0, 3, len(stars))
    return table[((stars.astype(np.int64) - 1) * len(topics) + top_topic) * 3 + variant]
