"""Create a user in a role and print its password once. There is no open signup."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.models import Dataset
from datasets.services.datasets import membership_add, user_create
from synthaug import roles


class Command(BaseCommand):
    help = "Create a user with a role (annotator, lead, admin) and print a random password once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=roles.ROLES)
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--dataset",
            action="append",
            default=[],
            metavar="SLUG",
            help="Make the user a member of this dataset (repeatable).",
        )

    def handle(self, *args, username: str, role: str, email: str, dataset: list[str], **options):
        datasets = []
        for slug in dataset:
            found = Dataset.objects.filter(slug=slug).first()
            if found is None:
                raise CommandError(f"No dataset with slug {slug!r}.")
            datasets.append(found)
        try:
            user, password = user_create(username=username, role=role, email=email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        for found in datasets:
            membership_add(dataset=found, user=user)
        self.stdout.write(f"Created {role} {username!r}.")
        self.stdout.write(f"Password (shown once, store it now): {password}")
