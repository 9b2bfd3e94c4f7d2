"""Bringing real data into a dataset: samples and source documents from files.

The pieces, in the order a row meets them:

* ``readers``: bytes to rows. Decoding (UTF-8, UTF-8/UTF-16/UTF-32 with a BOM), CSV,
  XLSX, JSON arrays, JSON Lines, SQuAD-style JSON, text and Markdown documents. A row the
  reader cannot make sense of becomes a row problem; a file it cannot read at all raises
  ``FileError``.
* ``mapping``: which column becomes which sample field (the mapping dict and its text form).
* ``rowspec``: the one definition of a good sample row (``RowSpec.clean``) and of a good
  source document (``DocSpec.clean``), plus the wording of duplicate errors.
* two engines that share the readers and the row spec: ``tabular`` runs small CSV, XLSX
  and JSON files through django-import-export (``datasets.resources.SampleResource``);
  ``streamed`` stages any file in a table with COPY and checks duplicates in SQL.
  ``documents`` feeds source documents (and SQuAD questions) to the streamed machinery.

``datasets.services.imports`` is the public API; nothing here is called from views directly.
"""
