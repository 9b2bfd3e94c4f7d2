"""Print a dataset's coverage matrix and its gaps, as a table or as JSON.

    manage.py coverage demo
    manage.py coverage demo --dims task,locale --json
    manage.py coverage demo --refresh          # rebuild the kept counts first, here

Reads the kept counts, like the coverage page; ``--refresh`` rebuilds them in this
process first (one GROUP BY over the dataset's samples).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.models import Dataset
from datasets.selectors.coverage import coverage_report, dimensions_for
from datasets.services.coverage import coverage_counts_refresh

GAPS_LISTED = 20


class Command(BaseCommand):
    help = "Print a dataset's coverage matrix (tag slices x difficulty) and its gaps."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", help="The dataset's slug")
        parser.add_argument(
            "--dims", default="", help="One or two tag dimensions, comma-separated (topic,locale)"
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table")
        parser.add_argument(
            "--refresh", action="store_true", help="Rebuild the kept counts before printing"
        )

    def handle(self, *args, **options) -> None:
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"No dataset with the slug {options['dataset']!r}.")
        requested = [d.strip() for d in options["dims"].split(",") if d.strip()]
        unknown = [d for d in requested if d not in (dataset.tag_dimensions or {})]
        if unknown or len(requested) > 2:
            known = ", ".join(sorted(dataset.tag_dimensions or {})) or "none"
            raise CommandError(
                f"--dims takes one or two of the dataset's dimensions ({known}); "
                f"got {options['dims']!r}."
            )
        dimensions = dimensions_for(dataset=dataset, requested=requested)
        if not dimensions:
            raise CommandError(f"{dataset.slug} has no tag dimensions to analyse coverage by.")
        if options["refresh"]:
            state = coverage_counts_refresh(dataset_id=dataset.pk)
            if not options["json"]:
                self.stdout.write(
                    f"Counted {state.samples_counted} samples in {state.refresh_seconds:.2f} s."
                )
        report = coverage_report(dataset=dataset, dimensions=dimensions)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
            return
        self._table(report)

    def _table(self, report: dict) -> None:
        dims = report["dimensions"]
        if report["refreshed_at"] is None:
            self.stdout.write(
                "The counts have not been built yet: run with --refresh (or wait for a worker)."
            )
        difficulties = list(dict.fromkeys(c["difficulty"] for c in report["cells"]))
        rows: dict[tuple, dict[str, dict]] = {}
        for cell in report["cells"]:
            row = tuple(cell["slice"][d] for d in dims)
            rows.setdefault(row, {})[cell["difficulty"]] = cell
        label = " x ".join(dims)
        heads = [d or "unset" for d in difficulties]
        labels = {
            row: " x ".join(v or f"(no {d})" for d, v in zip(dims, row, strict=True))
            for row in rows
        }
        width = max([len(label), *(len(v) for v in labels.values())])
        self.stdout.write(
            f"Coverage of {report['dataset']}: {label} x difficulty; default target "
            f"{report['default_target']}, synthetic ceiling {report['synthetic_ceiling']}."
        )
        self.stdout.write("Cells: approved/target, gap after '-', '!' when over the ceiling.")
        self.stdout.write(f"{label:<{width}}  " + "  ".join(f"{h:>14}" for h in heads))
        for row, cells in rows.items():
            parts = []
            for difficulty in difficulties:
                cell = cells[difficulty]
                text = (
                    f"{cell['approved']}/{cell['target']}"
                    if cell["target"]
                    else (f"{cell['approved']}")
                )
                if cell["gap"]:
                    text += f" -{cell['gap']}"
                if cell["over_ceiling"]:
                    text += " !"
                parts.append(f"{text:>14}")
            self.stdout.write(f"{labels[row]:<{width}}  " + "  ".join(parts))
        self.stdout.write("")
        self.stdout.write(
            f"Total gap: {report['total_gap']} samples in {len(report['gaps'])} cells. "
            f"Untagged samples: {report['untagged']}."
        )
        for cell in report["gaps"][:GAPS_LISTED]:
            where = ", ".join(f"{k}={v}" for k, v in cell["slice"].items())
            self.stdout.write(
                f"  gap {cell['gap']:>6}  {where} x {cell['difficulty']}  "
                f"(approved {cell['approved']} of {cell['target']}, "
                f"{cell['synthetic_pending']} pending)"
            )
        if len(report["gaps"]) > GAPS_LISTED:
            self.stdout.write(f"  ... and {len(report['gaps']) - GAPS_LISTED} more (use --json).")
