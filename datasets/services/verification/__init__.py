"""The checking stage (issue 4): every generated candidate through format, faithfulness,
safety, uniqueness and the judge, each stored as its own CheckResult, then difficulty and
the batch's diversity.

- ``run``: the stage's services (a chunk, finishing a batch, the in-process run);
- ``checks``: each check of one item as a plain outcome;
- ``judge``: the judge prompt and schema, the endpoint judge and the built-in one.
"""

from __future__ import annotations

from datasets.services.verification.judge import JUDGE_SCHEMA, judge_prompt
from datasets.services.verification.run import (
    ChecksOutcome,
    batch_checks_begin,
    batch_checks_chunk,
    batch_checks_finish,
    batch_checks_run_sync,
    release_paraphrase_only,
)

__all__ = [
    "JUDGE_SCHEMA",
    "ChecksOutcome",
    "batch_checks_begin",
    "batch_checks_chunk",
    "batch_checks_finish",
    "batch_checks_run_sync",
    "judge_prompt",
    "release_paraphrase_only",
]
