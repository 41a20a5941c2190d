"""The simulator's Amazon writer: Electronics reviews and metadata, 2018 or 2023 layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmark.data.simulator.ground_truth import write_ground_truth
from benchmark.data.simulator.output import atomic_output, gzip_file, iso_times, json_strings, write_lines
from benchmark.data.simulator.process import TIME_RANGES, SimulationConfig, simulate, stars_on_scale
from benchmark.data.simulator.text import BRANDS, TOPICS, UPPER, item_words, random_ids, review_texts, topic_order


def _review_time(timestamps: np.ndarray) -> list[str]:
    """Amazon 2018 ``reviewTime``: "09 18, 1999" (month, day, year)."""
    return [f"{d[5:7]} {d[8:10]}, {d[:4]}" for d in iso_times(timestamps)]


def write_amazon(cfg: SimulationConfig, out_dir: Path, layout: str = "2018", compress: bool = False) -> None:
    """Write a simulated dataset as Amazon Electronics reviews + metadata (layout 2018:
    ``Electronics_5.json``/``meta_Electronics.json``; 2023: ``Electronics.jsonl``/
    ``meta_Electronics.jsonl``), optionally gzip-compressed, atomically; ground truth beside."""
    if layout not in ("2018", "2023"):
        raise ValueError("layout must be '2018' or '2023'")

    def write(tmp: Path) -> None:
        sim = simulate(cfg, TIME_RANGES["amazon"] if layout == "2018" else (1_262_304_000, 1_694_000_000))
        rng = np.random.default_rng(cfg.seed + 1)
        asins = random_ids(rng, cfg.n_items, 7, "B00", UPPER)
        user_ids = random_ids(rng, cfg.n_users, 13, "A", UPPER) if layout == "2018" else random_ids(rng, cfg.n_users, 26, "AE", UPPER)
        topics = TOPICS["amazon"]
        order = topic_order(sim["item_factors"])
        top, second = order[:, 0] % len(topics), order[:, 1] % len(topics)
        words = item_words(rng, sim["item_factors"], [t[2] for t in topics], 6)
        price = np.exp(3.2 + 0.7 * sim["item_factors"][:, 0] + rng.normal(0, 0.3, cfg.n_items))
        brand_of = (top * 7 + second) % len(BRANDS)
        counts = np.bincount(sim["item"], minlength=cfg.n_items)
        stars = stars_on_scale(sim["z"], "amazon")
        mean_stars = np.bincount(sim["item"], weights=stars, minlength=cfg.n_items) / np.maximum(counts, 1)
        lines = []
        for i in range(cfg.n_items):
            t, s = topics[top[i]], topics[second[i]]
            brand = BRANDS[brand_of[i]].replace("&", "&amp;") if layout == "2018" else BRANDS[brand_of[i]]
            title = f"{BRANDS[brand_of[i]]} {t[2][i % 5].title()} {t[0].split(' ')[0]} {s[2][i % 5]} Model {asins[i][-4:]}"
            description = [f"Designed for {t[2][(i + 1) % 5]} and {s[2][(i + 2) % 5]}. Features: {words[i]}."]
            features = [w.strip() for w in words[i].split(",")][:4]
            images = [f"https://images.example.invalid/I/{asins[i]}.jpg"] if i % 3 else []
            if layout == "2018":
                cats = ["Electronics", t[0].replace("&", "&amp;"), t[1]]
                price_text = "" if i % 6 == 0 else f"${price[i]:,.2f}"
                record = {
                    "category": cats, "tech1": "", "description": description, "fit": "",
                    "title": title.replace("&", "&amp;"), "also_buy": [asins[(i + k * 31) % cfg.n_items] for k in range(1, 1 + i % 4)],
                    "tech2": "", "brand": brand, "feature": features,
                    "rank": [f">#{(i * 37) % 90000 + 1:,} in Electronics (See Top 100 in Electronics)"] if i % 2 else f"{(i * 53) % 90000 + 1:,} in Electronics (",
                    "also_view": [asins[(i + k * 17) % cfg.n_items] for k in range(1, 1 + i % 3)], "main_cat": "All Electronics",
                    "similar_item": "", "date": "", "price": price_text, "asin": asins[i],
                    "imageURL": [u.replace(".jpg", "._SS40_.jpg") for u in images], "imageURLHighRes": images,
                }  # fmt: skip
                if i % 13 == 5:
                    del record["brand"], record["rank"]  # missing keys, as in the published file
            else:
                record = {
                    "main_category": "All Electronics", "title": title, "average_rating": round(float(mean_stars[i]), 1),
                    "rating_number": int(counts[i]), "features": features, "description": description,
                    "price": None if i % 6 == 0 else round(float(price[i]), 2),
                    "images": [{"thumb": u, "large": u, "variant": "MAIN", "hi_res": u} for u in images] if i % 10 else {"hi_res": images, "large": images},
                    "videos": [], "store": brand, "categories": ["Electronics", t[0], t[1]],
                    "details": {"Brand": brand, "Item model number": asins[i][-4:]}, "parent_asin": asins[i], "bought_together": None,
                }  # fmt: skip
            line = json.dumps(record, ensure_ascii=False)
            lines.append(line)
            if layout == "2018" and i % 50 == 7:
                lines.append(line)  # verbatim repeated metadata line (quirk of the published files)
        meta_name = "meta_Electronics.json" if layout == "2018" else "meta_Electronics.jsonl"
        review_name = "Electronics_5.json" if layout == "2018" else "Electronics.jsonl"

        n = len(sim["user"])
        texts = json_strings(review_texts("amazon", stars, top[sim["item"]], rng))
        summaries = np.array(["Five Stars", "Four Stars", "Three Stars", "Two Stars", "One Star"], dtype=object)[5 - stars.astype(int)]
        u_ids, a_ids, s_list, ts = user_ids[sim["user"]].tolist(), asins[sim["item"]].tolist(), stars.tolist(), sim["timestamp"].tolist()
        if layout == "2018":
            formats = ('"style": {"Format:": " Hardcover"}, ', '"style": [" Paperback"], ', "", "")
            style = np.array(formats, dtype=object)[rng.integers(0, 4, n)]
            votes = np.where(rng.random(n) < 0.15, rng.integers(2, 80, n), 0).tolist()
            review_lines = (
                f'{{"overall": {s}, {"" if v == 0 else chr(34) + "vote" + chr(34) + ": " + chr(34) + str(v) + chr(34) + ", "}"verified": true, '
                f'"reviewTime": "{rt}", "reviewerID": "{u}", "asin": "{a}", {st}"reviewerName": "Customer {u[-4:]}", '
                f'"reviewText": {x}, "summary": "{m}", "unixReviewTime": {t}}}'
                for s, v, rt, u, a, st, x, m, t in zip(s_list, votes, _review_time(sim["timestamp"]), u_ids, a_ids, style, texts, summaries, ts)
            )  # fmt: skip
        else:
            review_lines = (
                f'{{"rating": {s}, "title": "{m}", "text": {x}, "images": [], "asin": "{a}", "parent_asin": "{a}", '
                f'"user_id": "{u}", "timestamp": {t * 1000 + 123}, "helpful_vote": 0, "verified_purchase": true}}'
                for s, m, x, a, u, t in zip(s_list, summaries, texts, a_ids, u_ids, ts)
            )
        write_lines(tmp / review_name, review_lines)
        write_lines(tmp / meta_name, lines)
        if compress:
            for name in (review_name, meta_name):
                gzip_file(tmp / name)
        write_ground_truth(tmp, cfg, sim, "amazon", user_ids, asins)

    atomic_output(out_dir, write)
