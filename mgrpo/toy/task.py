"""Synthetic chain-arithmetic task: left-to-right arithmetic modulo 10.

A prompt is a fixed-length chain such as ``3+4*2-1=``; it is evaluated strictly left to
right modulo 10 (``3+4=7, 7*2=4, 4-1=3``). The supervised target writes the running
values as a scratchpad, then ``#`` and the final digit: ``7,4,3#3``. Only the digit after
``#`` counts, so a policy can drop the scratchpad and emit ``#d`` directly -- the short cut
that lets majority-vote self-reward collapse onto a constant answer.

Rows are JSONL ``{"id": int, "prompt": str, "answer": str}``. Four splits come from one
seed: ``pretrain`` (labelled, for supervised pre-training), ``train`` (RL prompts; the
labels are kept only for diagnostics), ``test`` (labelled, the benchmark) and ``val``
(labelled: the training curve and the choice of the best checkpoint, so that the test split
never picks the checkpoint it then scores). No prompt appears in two splits. ``val`` is
drawn last, so a seed gives the same pretrain/train/test rows as before it existed.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from mgrpo.atomic import check_folder, write_jsonl
from mgrpo.jsonl import DataError, iter_jsonl

OPERATORS = "+-*"
MODULUS = 10
ANSWER_MARK = "#"
SPLITS = ("pretrain", "train", "test", "val")

_FINAL_ANSWER = re.compile(r"[^#]*#(\d)\s*")
_PROMPT = re.compile(r"[0-9](?:[-+*][0-9])+=")  # digits and operators alternating, at least one operation, then '='


@dataclass(frozen=True)
class TaskConfig:
    operands: int = 5          # digits per chain (operands - 1 operations)
    pretrain_size: int = 4000
    train_size: int = 2000
    test_size: int = 200
    val_size: int = 200

    def sizes(self) -> tuple[int, ...]:
        """Rows per split, in the order of SPLITS."""
        return self.pretrain_size, self.train_size, self.test_size, self.val_size

    def validate(self) -> None:
        if self.operands < 2:
            raise ValueError(f"operands must be >= 2, got {self.operands}")
        for name in (f"{split}_size" for split in SPLITS):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        distinct = MODULUS ** self.operands * len(OPERATORS) ** (self.operands - 1)
        wanted = sum(self.sizes())
        if wanted > distinct // 2:  # drawing distinct prompts slows down as they run out
            raise ValueError(f"{wanted} rows requested but operands={self.operands} allows at most "
                             f"{distinct // 2} (half its {distinct} distinct prompts); use more operands or fewer "
                             f"rows")


def apply_op(left: int, op: str, right: int) -> int:
    if op == "+":
        return (left + right) % MODULUS
    if op == "-":
        return (left - right) % MODULUS
    if op == "*":
        return (left * right) % MODULUS
    raise ValueError(f"unknown operator {op!r}")


def running_values(prompt: str) -> list[int]:
    """Values after each operation of a prompt like ``3+4*2-1=``."""
    body = prompt.rstrip("=")
    digits, ops = body[0::2], body[1::2]
    value = int(digits[0])
    values = []
    for op, digit in zip(ops, digits[1:]):
        value = apply_op(value, op, int(digit))
        values.append(value)
    return values


def solve(prompt: str) -> str:
    return str(running_values(prompt)[-1])


def worked_solution(prompt: str) -> str:
    """Supervised target: scratchpad of running values, then ``#`` and the answer."""
    values = running_values(prompt)
    return ",".join(str(v) for v in values) + ANSWER_MARK + str(values[-1])


def check_generation_budget(tokenizer, rows: list[dict], max_new_tokens: int, where: str, setting: str) -> None:
    """A worked solution cut off by the generation budget has no answer (no reward, no vote, no learning): refuse a
    budget below the longest worked solution of `rows` (with <eos>), naming `where`, the `setting` to raise and the
    length needed."""
    longest = max(len(tokenizer(worked_solution(r["prompt"]), add_special_tokens=False)["input_ids"]) + 1
                  for r in rows)
    if longest > max_new_tokens:
        raise ValueError(f"worked solutions in {where} take up to {longest} tokens with <eos>, more than "
                         f"max_new_tokens={max_new_tokens}: raise {setting} to {longest} or use fewer operands")


def extract_answer(response: str) -> str | None:
    """The final answer digit, or None when the response has no well-formed final answer.

    Well-formed: exactly one ``#``, followed by one digit and nothing but whitespace.
    """
    match = _FINAL_ANSWER.fullmatch(response)
    return match.group(1) if match else None


def is_correct(response: str, answer: str) -> bool:
    extracted = extract_answer(response)
    return extracted is not None and extracted == str(answer).strip()


def _random_prompt(rng: random.Random, operands: int) -> str:
    parts = [str(rng.randrange(MODULUS))]
    for _ in range(operands - 1):
        parts += [rng.choice(OPERATORS), str(rng.randrange(MODULUS))]
    return "".join(parts) + "="


def generate_splits(seed: int, config: TaskConfig = TaskConfig()) -> dict[str, list[dict]]:
    """All splits, fully determined by ``seed`` and ``config``; prompts are distinct across splits."""
    from mgrpo.run_spec import check_seed

    check_seed(seed)
    config.validate()
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {}
    for split, size in zip(SPLITS, config.sizes()):
        rows = []
        while len(rows) < size:
            prompt = _random_prompt(rng, config.operands)
            if prompt in seen:
                continue
            seen.add(prompt)
            rows.append({"id": len(rows), "prompt": prompt, "answer": solve(prompt)})
        splits[split] = rows
    return splits


def write_splits(out_dir: Path, seed: int, config: TaskConfig = TaskConfig()) -> dict[str, Path]:
    check_folder(out_dir, "toy data folder")
    splits = generate_splits(seed, config)
    paths = {}
    for split, rows in splits.items():
        paths[split] = Path(out_dir) / f"{split}.jsonl"
        write_jsonl(paths[split], rows)
    return paths


def read_jsonl(path: Path, require_answer: bool = True) -> list[dict]:
    """Rows of a task JSONL file, checked: bad rows raise ValueError naming file and line."""
    rows = []
    for where, row in iter_jsonl(path, "task file"):
        keys = ("id", "prompt", "answer") if require_answer else ("id", "prompt")
        for key in keys:
            if key not in row:
                raise DataError(f"{where}: missing key {key!r}")
        if not isinstance(row["prompt"], str) or not row["prompt"]:
            raise DataError(f"{where}: 'prompt' must be a non-empty string")
        # a malformed chain failed later as "invalid literal for int()" naming no file (or, in val/test, was
        # sampled and graded against its label all the same)
        if not _PROMPT.fullmatch(row["prompt"]):
            raise DataError(f"{where}: 'prompt' {row['prompt']!r} is not a chain such as '3+4*2-1='")
        answer = row.get("answer")
        if answer not in (None, "") or require_answer:
            # a label that no extracted digit can equal ("None", "12", "true") gives the row 0 accuracy silently
            if isinstance(answer, bool) or not isinstance(answer, (str, int)) or \
                    str(answer).strip() != solve(row["prompt"]):
                raise DataError(f"{where}: 'answer' {answer!r} is not the chain's value {solve(row['prompt'])!r}")
            row = {**row, "answer": str(answer).strip()}  # ' 3 ' or 3 is the label '3' (pretraining's bare '#3')
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows
