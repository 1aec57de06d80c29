"""Every benchmark's data: its local files (validated, normalised into documents) and downloading its source.

Where a benchmark's data comes from is declared with it (``Benchmark.source``, read from its task file by
``mgrpo.evaluation.benchmarks``); ``MATH_SOURCES`` below is the training data's. ``mgrpo prepare-data`` downloads
each source with ``datasets.load_dataset`` on a machine with Hub access and writes ``<data-dir>/<file>`` as JSON
Lines with the dataset's own column names, plus ``<data-dir>/MANIFEST.json`` recording, per benchmark, the source,
config, split, the commit the download resolved to, row count and sha256. ``revision: null`` means "the default
branch at download time": the resolved commit is what MANIFEST.json records and what every result file reports;
pin a commit in the task file to make later downloads byte-identical.

Evaluation reads only local files. Reading validates every row and fails naming the file, line and field.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from mgrpo.atomic import write_json, write_jsonl
from mgrpo.evaluation.benchmarks import BENCHMARKS, DatasetSource
from mgrpo.jsonl import DataError, is_finite_number, iter_jsonl

MANIFEST = "MANIFEST.json"

# Training data, not benchmarks: the MATH splits the paper trains on (train; its labels never reach the reward)
# and validates on (test), as verl's own MATH example reads them. `mgrpo prepare-math` writes them.
MATH_SOURCES: dict[str, DatasetSource] = {s.benchmark: s for s in (
    DatasetSource("math_train", "DigitalLearningGmbH/MATH-lighteval", "default", "train",
                  "0530c78699ea5e8eb5530600900e1f328b48acad", "train.jsonl", ("problem", "solution"),
                  license="MIT (MATH by Hendrycks et al.)"),
    DatasetSource("math_test", "DigitalLearningGmbH/MATH-lighteval", "default", "test",
                  "0530c78699ea5e8eb5530600900e1f328b48acad", "test.jsonl", ("problem", "solution"),
                  license="MIT (MATH by Hendrycks et al.)"),
)}

# The toy task has no public source: its splits are generated (mgrpo.toy.task.write_splits).
TOY_FILE = "test.jsonl"


# ---------------------------------------------------------------- reading local files

def data_file(benchmark: str, data_dir: Path | str | None) -> Path:
    name = TOY_FILE if benchmark == "toy" else BENCHMARKS[benchmark].source.filename
    if data_dir is None:
        # toy data is generated (prepare-data refuses toy), the others are downloaded
        how = ("mgrpo toy-data --out DIR --seed 0" if benchmark == "toy" else
               f"mgrpo prepare-data --benchmarks {benchmark} --out DIR")
        raise ValueError(f"benchmark {benchmark!r} reads <data-dir>/{name}: pass --data-dir (prepare it with `{how}`)")
    return Path(data_dir) / name


def read_jsonl_rows(path: Path, fields: tuple[str, ...]) -> list[dict]:
    """Rows of a JSONL file; every row an object with every field in ``fields`` present and non-empty."""
    rows = []
    for where, row in iter_jsonl(path, "data file"):
        for field in fields:
            if field not in row:
                raise DataError(f"{where}: missing field {field!r}")
            if row[field] is None or (isinstance(row[field], (str, list)) and not row[field]):
                raise DataError(f"{where}: field {field!r} is empty")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


# LaTeX commands starting with "t", less their "t": what follows a TAB that was the "\\t" of one of them. Short ones
# that are also words after a real TAB ("\\tan", "\\to") are left out.
_TAB_COMMANDS = re.compile(r"\\?\t(?=(?:frac|riangle|imes|heta|ilde|herefore|hinspace|binom)(?![A-Za-z])"
                           r"|ext(?:bf|it|rm|tt)?\{)")


def clean_latex(text: str) -> str:
    """Undo a known upstream artifact (AIME 2024/2025 copies): a LaTeX command's backslash read as a string
    escape, so ``\\frac`` became a form feed + ``rac`` and ``\\tfrac`` / ``\\triangle`` a TAB + ``frac`` /
    ``riangle``. A form feed is never meaningful in a problem; a TAB is (MATH-500's Asymptote code indents with
    them), so only a TAB directly followed by the rest of a known command is repaired."""
    text = text.replace("\\\x0c", "\\f").replace("\x0c", "\\f")
    return _TAB_COMMANDS.sub(lambda _: "\\t", text)


def math_docs(rows: list[dict], path: Path, columns: dict[str, str]) -> list[dict]:
    """Normalised math problems: ``{"id", "problem", "answer"}`` (answer as a LaTeX string), read from the
    ``columns`` the task file names; a row without an id column is numbered by its position."""
    id_column = columns.get("id")
    for line_no, row in enumerate(rows, 1):
        # str() of a list, a boolean or NaN made the gold answer "[1]", "True" or "nan", which no response matches
        problem, answer = row[columns["problem"]], row[columns["answer"]]
        if not isinstance(problem, str):
            raise ValueError(f"{path}: row {line_no}: field {columns['problem']!r} must be text, got {problem!r}")
        if not (isinstance(answer, str) or is_finite_number(answer)):
            raise ValueError(f"{path}: row {line_no}: field {columns['answer']!r} must be text or a number, "
                             f"got {answer!r}")
    return [{"id": str(r.get(id_column, index)), "problem": clean_latex(str(r[columns["problem"]])),
             "answer": str(r[columns["answer"]]).strip()} for index, r in enumerate(rows)]


def _stable_rng(key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big"))


def gpqa_docs(rows: list[dict], path: Path, columns: dict[str, str]) -> list[dict]:
    """GPQA rows -> ``{"id", "question", "choices", "answer"}``: the four answers in an order fixed by the
    record id (or question), so every run and every method sees the same letters."""
    docs = []
    for row in rows:
        key = str(row.get("Record ID") or row["Question"])
        choices = [str(row["Correct Answer"]).strip()] + [str(row[f"Incorrect Answer {i}"]).strip() for i in (1, 2, 3)]
        order = list(range(4))
        _stable_rng(key).shuffle(order)
        docs.append({"id": key, "question": str(row["Question"]).strip(),
                     "choices": [choices[i] for i in order], "answer": "ABCD"[order.index(0)]})
    return docs


def mmlu_pro_docs(rows: list[dict], path: Path, columns: dict[str, str]) -> list[dict]:
    docs = []
    for line_no, row in enumerate(rows, 1):
        options = row["options"]
        if not isinstance(options, list) or not 2 <= len(options) <= 10:
            raise ValueError(f"{path}: row {line_no}: field 'options' must be a list of 2 to 10 strings")
        answer = str(row["answer"]).strip().upper()
        if len(answer) != 1 or not "A" <= answer < chr(ord("A") + len(options)):
            raise ValueError(f"{path}: row {line_no}: field 'answer' must be a letter naming one of the "
                             f"{len(options)} options, got {row['answer']!r}")
        docs.append({"id": str(row["question_id"]), "question": str(row["question"]).strip(),
                     "choices": [str(o) for o in options], "answer": answer})
    return docs


# A task file's ``format`` -> how its rows become documents (benchmarks.GRADING_OF_FORMAT names the same formats).
DOC_BUILDERS = {"math": math_docs, "gpqa": gpqa_docs, "mmlu_pro": mmlu_pro_docs}


def load_docs(benchmark: str, path: Path | str) -> list[dict]:
    """Validated, normalised documents of one benchmark's local file."""
    path = Path(path)
    spec = BENCHMARKS[benchmark]
    rows = read_jsonl_rows(path, spec.source.fields)
    return DOC_BUILDERS[spec.doc_format](rows, path, dict(spec.columns))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(data_dir: Path | str) -> dict[str, dict]:
    """``<data_dir>/MANIFEST.json``: ``{benchmark: entry}``, ``{}`` when there is none; a file that is not such an
    object is a DataError ``<path>: unreadable manifest: ...``."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable manifest: {err}") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: unreadable manifest: expected a JSON object, got {type(manifest).__name__}")
    for benchmark, entry in manifest.items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: unreadable manifest: entry {benchmark!r} is a {type(entry).__name__}, "
                            f"not an object")
    return manifest


def record_in_manifest(data_dir: Path | str, benchmark: str, entry: dict) -> dict:
    """Set ``benchmark``'s entry of ``<data_dir>/MANIFEST.json`` (the others kept; written atomically)."""
    manifest = read_manifest(data_dir)
    manifest[benchmark] = entry
    write_json(Path(data_dir) / MANIFEST, manifest, ensure_ascii=False)
    return entry


def dataset_record(benchmark: str, path: Path, manifest: dict[str, dict] | None = None) -> dict:
    """What a result file reports about the data it used: source, revision, local path and sha256.
    ``manifest``: the already read ``read_manifest(path.parent)`` (read here when None)."""
    record = {"source": None, "config": None, "split": None, "revision": None,
              "path": str(path), "sha256": file_sha256(path)}
    s = BENCHMARKS[benchmark].source if benchmark in BENCHMARKS else None
    if s is not None:
        record.update(source=s.hf_id, config=s.config, split=s.split, revision=s.revision)
    if manifest is None:
        manifest = read_manifest(Path(path).parent)
    entry = manifest.get(benchmark)
    if entry and entry.get("sha256") == record["sha256"]:  # only if the file is the one downloaded
        record["revision"] = entry.get("revision")
    return record


# ---------------------------------------------------------------- downloading (prepare-data)

def hf_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")


@contextmanager
def network_access(benchmark: str, source: str, hub: bool = True):
    """A download that cannot reach its source (no network, HF_HUB_OFFLINE=1, a Hub error) ends in one line naming
    the benchmark and the source, not in the client's traceback. OSError covers urllib's URLError, requests' and
    huggingface_hub's errors; httpx's (huggingface_hub's client) are checked only once httpx is loaded."""
    try:
        yield
    except Exception as err:
        httpx = sys.modules.get("httpx")
        if not (isinstance(err, OSError) or (httpx is not None and isinstance(err, httpx.HTTPError))):
            raise
        detail = (str(err).strip().splitlines() or [""])[0]
        needs = "Hugging Face Hub access (network, HF_HUB_OFFLINE unset)" if hub else "network access"
        raise ValueError(f"{benchmark}: cannot download {source}, which needs {needs}: "
                         f"{type(err).__name__}: {detail}") from None


def download(benchmark: str, out_dir: Path | str) -> dict:
    """Download one benchmark into ``out_dir`` and record it in MANIFEST.json; returns the manifest entry."""
    source = BENCHMARKS[benchmark].source if benchmark in BENCHMARKS else None
    if source is None:
        known = [name for name, b in BENCHMARKS.items() if b.source is not None]
        raise ValueError(f"no public source for {benchmark!r}; known: {', '.join(known)}")
    return download_source(source, out_dir)


def download_source(source: DatasetSource, out_dir: Path | str) -> dict:
    """Download one source's split to ``out_dir/<filename>`` (JSONL, its own columns), record it in MANIFEST.json."""
    token = hf_token()
    if source.gated and not token:
        raise ValueError(f"{source.hf_id} ({source.benchmark}) is gated: accept its terms on the Hub and set HF_TOKEN")
    import datasets
    from huggingface_hub import HfApi

    with network_access(source.benchmark, source.hf_id):
        revision = HfApi().dataset_info(source.hf_id, revision=source.revision, token=token).sha
        rows = datasets.load_dataset(source.hf_id, source.config, split=source.split, revision=revision, token=token)
    path = Path(out_dir) / source.filename
    count = write_jsonl(path, iter(rows), ensure_ascii=False, default=str)
    read_jsonl_rows(path, source.fields)  # fail now, not at evaluation time, if a column is missing
    entry = {**{k: v for k, v in asdict(source).items() if k in ("hf_id", "config", "split", "license")},
             "revision": revision, "path": source.filename, "rows": count, "sha256": file_sha256(path)}
    return record_in_manifest(out_dir, source.benchmark, entry)
