"""How each generation method turns one batch slot into one sample's fields.

Pure code over plain values (no ORM, no network), so it is tested without a database:

- ``prompts``: the default prompt wording, output schemas, and building chat messages from a
  prompt version with sample content always inserted as delimited data;
- ``grounding``: passages of a document and locating an answer inside one;
- ``methods``: parameter checks, seeded slot assignment, the offline provider per method,
  the LLM request per method and reading its answer back into sample fields.

The services in ``datasets.services.generation`` load rows, call these, and store the result.
"""
