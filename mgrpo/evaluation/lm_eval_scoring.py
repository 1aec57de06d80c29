"""Dataset loading, prompts and per-document scoring for the lm-eval tasks in ``lm_eval_tasks/``.

Each document is scored on ALL k samples lm-eval kept for it (filter ``keep_all_samples``):
``avg_at_k`` = fraction of the k samples that are correct, ``pass_at_k`` = 1 if any is. lm-eval averages both
over documents. (lm-eval's built-in tasks would keep only the first of k repeats.)
"""
from __future__ import annotations

from mgrpo.evaluation.choice_grading import LETTERS, score_choice
from mgrpo.evaluation.datasets import load_docs
from mgrpo.evaluation.math_grading import score_math

CHOICE_INSTRUCTION = "Answer with the letter of the correct option."


def load_local(benchmark: str | None = None, data_file: str | None = None, **_metadata):
    """lm-eval ``custom_dataset``: the benchmark's validated local file as a DatasetDict with a ``test`` split.

    lm-eval calls it with the task's metadata (``benchmark`` from the YAML, ``data_file`` from the runner)."""
    if not benchmark or not data_file:
        raise ValueError("lm-eval task metadata needs 'benchmark' and 'data_file' (set by mgrpo.evaluation)")
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(load_docs(benchmark, data_file))})


def math_doc_to_text(doc: dict) -> str:
    return doc["problem"]


def choice_doc_to_text(doc: dict) -> str:
    options = "\n".join(f"{LETTERS[i]}) {choice}" for i, choice in enumerate(doc["choices"]))
    return f"{doc['question']}\n\n{options}\n\n{CHOICE_INSTRUCTION}"


def keep_all_samples(resps, docs):
    """lm-eval filter: keep every one of the k responses of each document."""
    return resps


def _responses(results) -> list[str]:
    # One request per document; with keep_all_samples its filtered response is the list of its k samples.
    (responses,) = results
    return [responses] if isinstance(responses, str) else list(responses)


def _summary(verdicts: list[bool]) -> dict[str, float]:
    return {"avg_at_k": sum(verdicts) / len(verdicts), "pass_at_k": float(any(verdicts))}


def math_verdicts(doc: dict, responses: list[str]) -> list[tuple[str | None, bool]]:
    return [score_math(response, doc["answer"]) for response in responses]


def choice_verdicts(doc: dict, responses: list[str]) -> list[tuple[str | None, bool]]:
    return [score_choice(response, doc["answer"], len(doc["choices"])) for response in responses]


def process_math(doc: dict, results) -> dict[str, float]:
    return _summary([correct for _, correct in math_verdicts(doc, _responses(results))])


def process_choice(doc: dict, results) -> dict[str, float]:
    return _summary([correct for _, correct in choice_verdicts(doc, _responses(results))])
