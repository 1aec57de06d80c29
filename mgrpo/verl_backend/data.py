"""MATH train/test splits -> verl's RL parquet format, with the original code's prompt template.

Input: a directory holding the MATH splits as ``train.{jsonl,json,parquet}`` and ``test.{...}`` with columns
``problem`` and ``solution`` (the MATH / MATH-lighteval layout; an ``answer`` column, as in MATH-500, is used
when present, else the answer is the last ``\\boxed{}`` of the solution).

Output (verl's RLHFDataset format): ``train.parquet`` and ``test.parquet`` with ``data_source``, ``prompt``
(chat messages), ``ability``, ``reward_model`` and ``extra_info``. Training rows carry NO reference answer where
the reward reads it (``reward_model.ground_truth`` is empty): the canonical gold answer is kept only in the
separate column ``mgrpo_gold`` for the pseudo-label-precision diagnostic. Test rows carry it in
``reward_model.ground_truth`` (validation accuracy).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from mgrpo.atomic import atomic_path, check_folder
from mgrpo.jsonl import is_finite_number, iter_jsonl, read_json
from mgrpo.verl_backend.reward import canonical, extract_answer

# The released code's system prompt for models other than the Qwen2.5 1.5B/3B/7B variants
# (examples/data_preprocess/math_dataset_ours.py, `instruction_following_0`); Qwen3-4B-Base falls in that case.
SYSTEM_PROMPT = "Let's think step by step and output the final answer within \\boxed{}."
DATA_SOURCE = "math"
SPLITS = ("train", "test")
INPUT_SUFFIXES = (".jsonl", ".json", ".parquet")
# The columns of a prepared split that are read in training: verl's dataset (prompt), the reward (data_source,
# reward_model.ground_truth, extra_info.split) and the method's stage (mgrpo_gold).
READ_COLUMNS = ("data_source", "prompt", "reward_model", "extra_info", "mgrpo_gold")
PREPARE_HINT = "prepare it with `mgrpo verl-prepare-data`"


def find_split(directory: Path, split: str) -> Path:
    for suffix in INPUT_SUFFIXES:
        path = Path(directory) / f"{split}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {split} split in {directory} (looked for {', '.join(split + s for s in INPUT_SUFFIXES)})")


def read_rows(path: Path) -> list[dict]:
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        # pyarrow's rows, not pandas': pandas turns a null string into NaN, which is truthy and not None, so a row
        # without an answer would get the gold "nan" instead of its solution's box
        return pq.read_table(path).to_pylist()
    if path.suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of objects")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ValueError(f"{path} row {index}: expected a JSON object, got {type(row).__name__}")
        return rows
    return [row for _, row in iter_jsonl(path, "MATH split")]


def _is_answer(value) -> bool:
    """A gold answer as MATH copies spell it: text, or a plain number (not a boolean, NaN or inf)."""
    return isinstance(value, str) or is_finite_number(value)


def gold_answer(row: dict, where: str) -> str:
    # str() of a list, a boolean or NaN became the gold answer "[1]", "True" or "nan", which no response matches
    if row.get("answer") not in (None, ""):
        if not _is_answer(row["answer"]):
            raise ValueError(f"{where}: 'answer' {row['answer']!r} is not text or a number")
        gold = canonical(row["answer"])
    elif row.get("solution"):
        if not isinstance(row["solution"], str):
            raise ValueError(f"{where}: 'solution' {row['solution']!r} is not text")
        gold = extract_answer(row["solution"])
    else:
        raise ValueError(f"{where}: row has neither 'answer' nor 'solution'")
    if gold is None:
        raise ValueError(f"{where}: no \\boxed{{}} answer in the solution")
    return gold


def convert_rows(rows: list[dict], split: str, source: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict]:
    out = []
    for index, row in enumerate(rows):
        where = f"{source} row {index}"
        if not row.get("problem"):
            raise ValueError(f"{where}: missing 'problem'")
        if not isinstance(row["problem"], str):
            raise ValueError(f"{where}: 'problem' {row['problem']!r} is not text")
        gold = gold_answer(row, where)
        out.append({
            "data_source": DATA_SOURCE,
            "prompt": [{"role": "system", "content": system_prompt},
                       {"role": "user", "content": str(row["problem"])}],
            "ability": "math",
            # The reward function reads ground_truth: empty for training rows (label-free training).
            "reward_model": {"style": "rule", "ground_truth": gold if split == "test" else ""},
            "extra_info": {"split": split, "index": index,
                           "level": str(row.get("level", "")), "type": str(row.get("type", ""))},
            # Hidden gold: a top-level column that verl passes along with the prompt but never to the reward.
            "mgrpo_gold": gold,
        })
    return out


def write_parquet_atomic(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def check_prepared(path: Path) -> None:
    """A prepared split is a parquet file with rows and the columns read in training; checked from its footer
    alone (no row is read). A ValueError naming the file otherwise."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
    except ValueError as err:  # pyarrow's ArrowInvalid: empty, cut short or not parquet
        raise ValueError(f"{path}: not a parquet file ({err}); {PREPARE_HINT}") from None
    missing = [name for name in READ_COLUMNS if name not in metadata.schema.to_arrow_schema().names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; {PREPARE_HINT}")
    if metadata.num_rows == 0:
        raise ValueError(f"{path}: no rows")


def problem_key(text) -> str:
    """A problem's text without its whitespace: the same problem in two copies of MATH, whether a copy re-wraps the
    text or spaces its LaTeX differently (``$2+2$`` / ``$2 + 2$``)."""
    return "".join(str(text).split())


def read_excluded_problems(paths: Sequence[Path]) -> dict[str, str]:
    """problem_key -> file, for every problem of the given benchmark files (JSONL/JSON/parquet, column problem)."""
    excluded = {}
    for path in paths:
        for index, row in enumerate(read_rows(Path(path))):
            if not row.get("problem"):
                raise ValueError(f"{path} row {index}: no 'problem' to leave out of the MATH splits")
            excluded[problem_key(row["problem"])] = str(path)
    return excluded


def prepare(source_dir: Path, out_dir: Path, test_limit: Optional[int] = None,
            system_prompt: str = SYSTEM_PROMPT, exclude: Sequence[Path] = ()) -> dict[str, Path]:
    """Write ``out_dir/train.parquet`` and ``out_dir/test.parquet``; returns their paths.

    ``exclude``: benchmark files whose problems leave both splits. The test split is the validation set that
    picks the best/ checkpoint; MATH-500 is a subset of MATH's test split, so without this SRT_Best's MATH500
    score would be selected on the benchmark it is reported on.
    """
    check_folder(out_dir, "output folder")
    excluded = read_excluded_problems(exclude)
    found: set[str] = set()
    converted = {}
    for split in SPLITS:
        source = find_split(source_dir, split)
        rows = read_rows(source)
        if not rows:
            raise ValueError(f"{source}: no rows")
        if excluded:
            kept = [row for row in rows if problem_key(row.get("problem", "")) not in excluded]
            found |= {problem_key(row.get("problem", "")) for row in rows} & excluded.keys()
            print(f"{split}: {len(rows) - len(kept)} of {len(rows)} rows left out (problems of "
                  f"{', '.join(sorted(set(excluded.values())))})", file=sys.stderr)
            rows = kept
            if not rows:
                raise ValueError(f"{source}: no rows left once the excluded benchmarks' problems are out")
        if split == "test" and test_limit:
            rows = rows[:test_limit]
        converted[split] = convert_rows(rows, split, str(source), system_prompt)
    # both splits read and converted before either is written: a bad test split must not leave a new train.parquet
    # beside the old test.parquet
    written = {split: Path(out_dir) / f"{split}.parquet" for split in SPLITS}
    for split in SPLITS:
        write_parquet_atomic(converted[split], written[split])
    for path in sorted(set(excluded.values())):
        absent = [key for key, where in excluded.items() if where == path and key not in found]
        if absent:
            total = sum(1 for where in excluded.values() if where == path)
            print(f"warning: {len(absent)} of the {total} problems of {path} are in neither MATH split as written "
                  "(another copy's text?): check that the validation split does not hold them", file=sys.stderr)
    return written
