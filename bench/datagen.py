"""Build large benchmark files from the real demo data, with variations.

Each row is a real TruthfulQA or XQuAD question, reworded by one of a few prefixes and
suffixes and made unique by a case number, so files of any size exist without shipping
them. Rows match the demo dataset's schema and tag vocabulary.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import orjson

DEMO = Path(__file__).resolve().parent.parent / "datasets" / "demo_data"

PREFIXES = ["", "Quick check: ", "Answer briefly. ", "In one sentence, ", "Be precise: "]
SUFFIXES = ["", " Explain.", " Give the short answer.", " Cite your reason."]
LOCALES = ["en", "de", "es", "zh"]


def base_rows() -> list[tuple[str, str, str, str]]:
    """(question, answer, task, category) from TruthfulQA and XQuAD-en."""
    rows = []
    with (DEMO / "TruthfulQA.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows.append((row["Question"], row["Best Answer"], "truthfulness", row["Category"]))
    squad = json.loads((DEMO / "xquad.en.json").read_text(encoding="utf-8"))
    for article in squad["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                rows.append(
                    (
                        qa["question"],
                        qa["answers"][0]["text"],
                        "reading_comprehension",
                        article["title"],
                    )
                )
    return rows


def generate(n: int) -> Iterator[dict]:
    base = base_rows()
    for i in range(n):
        question, answer, task, category = base[i % len(base)]
        k = i // len(base)
        prefix = PREFIXES[k % len(PREFIXES)]
        suffix = SUFFIXES[(k // len(PREFIXES)) % len(SUFFIXES)]
        yield {
            "id": f"bench-{i}",
            "input": {"question": f"{prefix}{question}{suffix} (case {i})"},
            "expected": {"answer": answer},
            "tags": {"task": task, "category": category, "locale": LOCALES[i % len(LOCALES)]},
        }


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("wb") as fh:
        for row in generate(n):
            fh.write(orjson.dumps(row) + b"\n")
    return path


CSV_HEADER = ["id", "question", "answer", "task", "category", "locale"]
CSV_MAPPING = {
    "id": "id",
    "input": {"question": "question"},
    "expected": {"answer": "answer"},
    "tags": {"task": "task", "category": "category", "locale": "locale"},
    "difficulty": "",
}


def write_csv(path: Path, n: int, start: int = 0) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for i, row in enumerate(generate(start + n)):
            if i < start:
                continue
            tags = row["tags"]
            writer.writerow(
                [
                    row["id"],
                    row["input"]["question"],
                    row["expected"]["answer"],
                    tags["task"],
                    tags["category"],
                    tags["locale"],
                ]
            )
    return path
