"""Generate the demo task: pull three facts out of a sentence into a fixed `NAME | CITY | AGE` line.

The bundled 135M model answers such requests in free prose, so its exact match starts near zero;
the format is learnable from a few hundred examples. Deterministic for a given seed.

    python examples/make_demo_data.py OUT_DIR [--seed 7] [--train 400] [--test 40]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = [
    "Maria", "Jonas", "Aiko", "Samuel", "Lena", "Omar", "Priya", "Tomas", "Chloe", "Mateo", "Ingrid", "Kwame",
    "Sofia", "Nikolai", "Fatima", "Lucas", "Hana", "Diego", "Elena", "Ravi", "Zoe", "Felix", "Amara", "Hugo",
    "Yara", "Bruno", "Mei", "Oscar", "Leila", "Anton", "Nadia", "Pablo", "Greta", "Idris", "Clara", "Emil",
]
CITIES = [
    "Lisbon", "Oslo", "Kyoto", "Nairobi", "Lima", "Vienna", "Dublin", "Perth", "Quito", "Tallinn", "Porto",
    "Seville", "Krakow", "Hanoi", "Accra", "Bergen", "Lyon", "Cusco", "Turin", "Ghent", "Bologna", "Riga",
    "Malmo", "Leeds", "Graz", "Split", "Zurich", "Nantes", "Aarhus", "Bilbao",
]
TEMPLATES = [
    "{name} is {age} years old and lives in {city}.",
    "Living in {city}, {name} just turned {age}.",
    "At {age}, {name} moved to {city} for work.",
    "{name} ({age}) is a teacher based in {city}.",
    "Our new member is {name}, age {age}, from {city}.",
    "{city} has been home to {name} since they were {age}.",
    "Meet {name}: {age} years young and proud of {city}.",
    "The form says {name}, {age}, resident of {city}.",
]
INSTRUCTION = "Extract the person's name, city and age from the text. Reply as NAME | CITY | AGE.\n\nText: "


def make_example(rng: random.Random) -> dict:
    name, city, age = rng.choice(NAMES), rng.choice(CITIES), rng.randint(18, 89)
    sentence = rng.choice(TEMPLATES).format(name=name, city=city, age=age)
    return {
        "messages": [
            {"role": "user", "content": INSTRUCTION + sentence},
            {"role": "assistant", "content": f"{name} | {city} | {age}"},
        ]
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def generate(out_dir: Path, *, seed: int = 7, train: int = 400, test: int = 40) -> tuple[Path, Path]:
    """Write train.jsonl and a disjoint test.jsonl (no test sentence appears in training)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict] = []
    while len(rows) < train + test:
        row = make_example(rng)
        key = row["messages"][0]["content"]
        if key not in seen:
            seen.add(key)
            rows.append(row)
    train_path, test_path = out_dir / "train.jsonl", out_dir / "test.jsonl"
    write_jsonl(train_path, rows[:train])
    write_jsonl(test_path, rows[train:])
    return train_path, test_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=40)
    args = parser.parse_args()
    for path in generate(args.out_dir, seed=args.seed, train=args.train, test=args.test):
        print(path)
