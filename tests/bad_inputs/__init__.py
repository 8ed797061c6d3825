"""The bad-input corpus: every ``cases_*.py`` here defines ``CASES``, a list of dicts.

Each case: ``id`` (unique str), ``argv`` (list of str for :func:`abm.cli.main`; ``{tmp}`` stands for
the case's temp folder, which is also the working folder), ``files`` (relative path -> bytes or str,
created in the temp folder first; may be empty) and ``field`` (a substring the one error line must
contain). ``tests/test_bad_input_corpus.py`` runs them all: exit code 2, the field named, no
traceback, nothing written or deleted.
"""
