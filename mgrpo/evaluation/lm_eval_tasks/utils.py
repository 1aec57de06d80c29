"""Functions the task YAMLs of this folder name with ``!function utils.<name>``.

lm-eval loads this file by path; everything of substance lives in ``mgrpo.evaluation`` so the same code grades
lm-eval runs, the per-sample log and the tests.
"""
from __future__ import annotations

from mgrpo.evaluation.lm_eval_scoring import (  # noqa: F401 -- re-exported for the YAMLs
    choice_doc_to_text,
    keep_all_samples,
    load_local,
    math_doc_to_text,
    process_choice,
    process_math,
)
