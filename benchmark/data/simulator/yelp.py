"""The simulator's Yelp writer: the Yelp Open Dataset's JSON-lines files (review, business, user)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.simulator.ground_truth import write_ground_truth
from benchmark.data.simulator.output import atomic_output, iso_times, json_strings, write_lines
from benchmark.data.simulator.process import TIME_RANGES, SimulationConfig, simulate, stars_on_scale
from benchmark.data.simulator.text import CITIES, NAME_WORDS, TOPICS, item_words, random_ids, review_texts, topic_order


def write_yelp(cfg: SimulationConfig, out_dir: Path) -> None:
    """Write a simulated dataset as the Yelp Open Dataset's JSON-lines files (review,
    business, user), atomically; ground truth beside them."""

    def write(tmp: Path) -> None:
        sim = simulate(cfg, TIME_RANGES["yelp"])
        rng = np.random.default_rng(cfg.seed + 1)
        business_ids = random_ids(rng, cfg.n_items, 22)
        user_ids = random_ids(rng, cfg.n_users, 22)
        topics = TOPICS["yelp"]
        order = topic_order(sim["item_factors"])
        top = order[:, 0] % len(topics)
        second = order[:, 1] % len(topics)
        words = item_words(rng, sim["item_factors"], [t[2] for t in topics], 4)
        price_level = np.clip(np.round(2.3 + 0.8 * sim["item_factors"][:, 0]), 1, 4).astype(int)
        city = rng.integers(0, len(CITIES), cfg.n_items)
        counts = np.bincount(sim["item"], minlength=cfg.n_items)
        stars = stars_on_scale(sim["z"], "yelp")
        mean_stars = np.bincount(sim["item"], weights=stars, minlength=cfg.n_items) / np.maximum(counts, 1)
        lines = []
        for i in range(cfg.n_items):
            t, s = topics[top[i]], topics[second[i]]
            cats = list(dict.fromkeys([t[0], t[1], s[0], "Restaurants" if top[i] < 5 or top[i] in (7, 8, 10, 11) else "Local Services"]))
            attributes = None if i % 11 == 3 else {
                "BusinessAcceptsCreditCards": "True", "RestaurantsPriceRange2": str(price_level[i]),
                "WiFi": ("u'free'", "'no'", "u'paid'")[i % 3], "OutdoorSeating": "False" if i % 2 else "True",
                "BusinessParking": f"{{'garage': False, 'street': {i % 2 == 0}, 'validated': False, 'lot': {i % 3 == 0}, 'valet': False}}",
            }  # fmt: skip
            record = {
                "business_id": business_ids[i], "name": f"{NAME_WORDS[i % len(NAME_WORDS)]} {t[2][i % 5].title()} {t[0].split(' ')[0]}",
                "address": f"{100 + i % 9000} Main St", "city": CITIES[city[i]][0], "state": CITIES[city[i]][1],
                "postal_code": f"{10000 + i % 89999}", "latitude": round(30 + (i % 997) / 100, 6), "longitude": round(-120 + (i % 991) / 50, 6),
                "stars": float(np.round(mean_stars[i] * 2) / 2) if counts[i] else 3.0, "review_count": int(counts[i]),
                "is_open": int(i % 7 != 0), "attributes": attributes,
                "categories": ", ".join(cats) + (f", Specialty: {words[i]}" if i % 4 == 0 else "") if i % 97 != 13 else None,
                "hours": None if i % 5 == 1 else {"Monday": "8:0-18:30", "Tuesday": "8:0-18:30"},
            }  # fmt: skip
            lines.append(json.dumps(record, ensure_ascii=False).replace("/", "\\/"))
        write_lines(tmp / "yelp_academic_dataset_business.json", lines)

        n = len(sim["user"])
        review_ids = random_ids(rng, n, 22)
        dates = iso_times(sim["timestamp"])
        texts = json_strings(review_texts("yelp", stars, top[sim["item"]], rng))
        useful = rng.poisson(1.0, n)
        u_ids, b_ids, s_list = user_ids[sim["user"]].tolist(), business_ids[sim["item"]].tolist(), stars.tolist()
        write_lines(
            tmp / "yelp_academic_dataset_review.json",
            (
                f'{{"review_id":"{r}","user_id":"{u}","business_id":"{b}","stars":{s},"useful":{f},"funny":0,"cool":0,"text":{x},"date":"{d[:10]} {d[11:]}"}}'
                for r, u, b, s, f, x, d in zip(review_ids.tolist(), u_ids, b_ids, s_list, useful.tolist(), texts, dates)
            ),
        )
        del texts, u_ids, b_ids
        per_user = np.bincount(sim["user"], minlength=cfg.n_users)
        first_seen = pd.Series(sim["timestamp"]).groupby(sim["user"]).min().reindex(range(cfg.n_users), fill_value=TIME_RANGES["yelp"][0])
        since = [f"{d[:10]} {d[11:]}" for d in iso_times(first_seen.to_numpy())]
        write_lines(
            tmp / "yelp_academic_dataset_user.json",
            (f'{{"user_id":"{u}","name":"User {k}","review_count":{c},"yelping_since":"{s}","friends":"None","fans":0}}'
             for k, (u, c, s) in enumerate(zip(user_ids.tolist(), per_user.tolist(), since))),
        )  # fmt: skip
        write_ground_truth(tmp, cfg, sim, "yelp", user_ids, business_ids)

    atomic_output(out_dir, write)


