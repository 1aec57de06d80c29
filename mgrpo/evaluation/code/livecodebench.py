"""LiveCodeBench (code generation) executor following lcb_runner's rules, every candidate run in our sandbox.

There is no usable package (LCB's loader is a `datasets` script, refused by datasets >= 4), so this module reads the
release JSONL files of `livecodebench/code_generation_lite` (`test.jsonl`, `test2.jsonl`, ...) itself:
- problems are filtered by `contest_date` like lcb_runner: start <= contest_date <= end (dates "%Y-%m-%d");
- private tests are JSON, or base64(zlib(pickle(json string))) in the releases: the pickle is decoded with an
  unpickler that refuses every global, so only plain values (the JSON string) can come out of it;
- prompts use LCB's generic template; code is extracted from the last fenced block of the response (LCB's
  `extract_code`); a candidate passes when it passes every public and private test (pass@1 = mean over samples).
Grading is split: the sandboxed driver gets the test INPUTS only and reports what the candidate produced (stdout
text, or a call's result as plain data, plain_data.py); the comparison with the expected outputs runs here, on the
host, so a candidate cannot read the expected outputs, patch the comparison or return an object that equals all.
"""
from __future__ import annotations

import base64
import io
import json
import pickle
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from mgrpo.evaluation.code import plain_data
from mgrpo.evaluation.sandbox import run_untrusted
from mgrpo.jsonl import DataError, iter_jsonl

REQUIRED_FIELDS = ("question_title", "question_content", "platform", "question_id", "contest_date", "starter_code",
                   "difficulty", "public_test_cases", "private_test_cases", "metadata")
MAX_DECOMPRESSED_BYTES = 1 << 30  # a zlib bomb in a data file must not exhaust memory
DEFAULT_TEST_TIMEOUT_S = 6.0  # lcb_runner's per-test default
DRIVER_SOURCE = Path(__file__).with_name("_lcb_driver.py")
SUPERVISOR_SOURCE = Path(__file__).with_name("_supervisor.py")

SYSTEM_MESSAGE = ("You are an expert Python programmer. You will be given a question (problem specification) and will "
                  "generate a correct Python program that matches the specification and passes all tests.")
FORMAT_WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your "
                       "code within delimiters.")
FORMAT_WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
                          "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when "
                          "the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")


@dataclass(frozen=True)
class LcbProblem:
    question_id: str
    title: str
    content: str
    platform: str
    difficulty: str
    contest_date: datetime
    starter_code: str
    inputs: tuple[str, ...]  # public tests first, then private ones
    outputs: tuple[str, ...]
    fn_name: str | None  # None: stdin/stdout problem


# ------------------------------------------------------------------------------------------------ data
def release_files(data_path: str | Path, release_version: str = "release_latest") -> list[Path]:
    """The JSONL files of a release: `release_vK` = test.jsonl, test2.jsonl, ..., testK.jsonl; a file path as is."""
    path = Path(data_path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"LiveCodeBench data not found: {path}")

    def number(file: Path) -> int:
        match = re.fullmatch(r"test(\d*)\.jsonl", file.name)
        return int(match.group(1) or 1) if match else 0

    files = sorted((f for f in path.iterdir() if number(f)), key=number)
    if release_version != "release_latest":
        match = re.fullmatch(r"release_v(\d+)", release_version)
        if not match:
            raise ValueError(f"release_version must be 'release_latest' or 'release_vK', got {release_version!r}")
        files = [f for f in files if number(f) <= int(match.group(1))]
    if not files:
        raise FileNotFoundError(f"no test*.jsonl release files in {path}")
    return files


class _PlainValuesUnpickler(pickle.Unpickler):
    """Refuses every global: no class, function or callable can be loaded, only str/bytes/numbers/containers."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def decode_private_tests(raw: str, where: str) -> list[dict]:
    """Private tests: a JSON list, or base64 -> zlib -> pickle of the JSON string (LCB releases)."""
    if not isinstance(raw, str):
        raise DataError(f"{where}: field 'private_test_cases' must be a string, got {type(raw).__name__}")
    if raw.lstrip().startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: field 'private_test_cases' is not valid JSON: {error}") from None
    try:
        decompressor = zlib.decompressobj()
        data = decompressor.decompress(base64.b64decode(raw, validate=True), MAX_DECOMPRESSED_BYTES)
        if decompressor.unconsumed_tail:
            raise DataError(f"{where}: field 'private_test_cases' decompresses to more than "
                            f"{MAX_DECOMPRESSED_BYTES} bytes")
        value = _PlainValuesUnpickler(io.BytesIO(data)).load()
        tests = json.loads(value) if isinstance(value, (str, bytes)) else value
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding failure is a data error naming the field
        raise DataError(f"{where}: field 'private_test_cases' could not be decoded "
                        f"(base64/zlib/pickle/json): {error}") from None
    if not isinstance(tests, list):
        raise DataError(f"{where}: field 'private_test_cases' must decode to a list, got {type(tests).__name__}")
    return tests


def _tests(raw_tests: list, where: str, field: str) -> list[tuple[str, str, str]]:
    tests = []
    for i, test in enumerate(raw_tests):
        if not isinstance(test, dict) or not {"input", "output", "testtype"} <= test.keys():
            raise DataError(f"{where}: field '{field}' item {i} must have input, output and testtype")
        if test["testtype"] not in ("stdin", "functional"):
            raise DataError(f"{where}: field '{field}' item {i} has unknown testtype {test['testtype']!r}")
        tests.append((str(test["input"]), str(test["output"]), test["testtype"]))
    return tests


def parse_problem(row: dict, where: str) -> LcbProblem:
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}")
    try:
        contest_date = datetime.fromisoformat(str(row["contest_date"]))
    except ValueError:
        raise DataError(f"{where}: field 'contest_date' is not an ISO date: {row['contest_date']!r}") from None
    try:
        public = json.loads(row["public_test_cases"]) if isinstance(row["public_test_cases"], str) \
            else row["public_test_cases"]
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: field 'public_test_cases' is not valid JSON: {error}") from None
    try:
        metadata = json.loads(row["metadata"] or "{}") if isinstance(row["metadata"], str) else row["metadata"]
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: field 'metadata' is not valid JSON: {error}") from None
    if not isinstance(public, list):
        raise DataError(f"{where}: field 'public_test_cases' must be a list")
    if not isinstance(metadata, dict):
        raise DataError(f"{where}: field 'metadata' must be a JSON object")
    tests = _tests(public, where, "public_test_cases") + _tests(
        decode_private_tests(row["private_test_cases"], where), where, "private_test_cases")
    if not tests:
        raise DataError(f"{where}: problem {row['question_id']!r} has no tests")
    return LcbProblem(
        question_id=str(row["question_id"]), title=str(row["question_title"]), content=str(row["question_content"]),
        platform=str(row["platform"]), difficulty=str(row["difficulty"]), contest_date=contest_date,
        starter_code=str(row["starter_code"] or ""), inputs=tuple(t[0] for t in tests),
        outputs=tuple(t[1] for t in tests), fn_name=metadata.get("func_name"),
    )


def load_problems(data_path: str | Path, start_date: str | None = None, end_date: str | None = None,
                  release_version: str = "release_latest") -> list[LcbProblem]:
    """Problems of the release files whose contest_date lies in [start_date, end_date] (LCB's comparison)."""
    start = datetime.strptime(start_date, "%Y-%m-%d") if start_date else None
    end = datetime.strptime(end_date, "%Y-%m-%d") if end_date else None
    problems = []
    for file in release_files(data_path, release_version):
        for where, row in iter_jsonl(file, "LiveCodeBench release file"):
            problem = parse_problem(row, where)
            if (start is None or start <= problem.contest_date) and (end is None or problem.contest_date <= end):
                problems.append(problem)
    return problems


# ------------------------------------------------------------------------------------------------ prompt, extraction
def build_prompt(problem: LcbProblem) -> str:
    """LCB's generic prompt; the system message leads the user message (the generator takes one user message)."""
    prompt = f"{SYSTEM_MESSAGE}\n\n### Question:\n{problem.content}\n\n"
    if problem.starter_code:
        prompt += f"### Format: {FORMAT_WITH_STARTER}\n```python\n{problem.starter_code}\n```\n\n"
    else:
        prompt += f"### Format: {FORMAT_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return prompt + "### Answer: (use the provided format with backticks)\n\n"


def extract_code(response: str) -> str:
    """LCB's rule: the text between the last two lines containing ``` ('' when there are fewer than two)."""
    lines = response.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1: fences[-1]])


# ------------------------------------------------------------------------------------------------ scoring
def score_code(problem: LcbProblem, code: str, timeout_s: float = DEFAULT_TEST_TIMEOUT_S,
               memory_mb: int = 2048) -> dict:
    """Run one candidate on all test inputs in one sandbox, then grade its outputs here by lcb_runner's rules.

    `results` as lcb_runner: True per passed test, then -2 (wrong answer), -3 (time limit) or -4 (runtime error)
    at the first failing test; -1 for every test when the run gives no usable report. A report is read only from
    a run whose sandbox status is "ok": a killed or crashed run proves nothing, whatever it printed."""
    n_tests = len(problem.inputs)
    if not code.strip():
        return {"passed": False, "results": [], "message": "no code extracted", "sandbox_status": None}
    nonce = secrets.token_hex(16)
    # the report carries every test's output: room for outputs several times the expected ones (JSON escapes)
    max_output = 4_000_000 + 8 * sum(len(o) for o in problem.outputs)
    task = {"nonce": nonce, "code": code, "fn_name": problem.fn_name, "timeout_s": timeout_s,
            "inputs": list(problem.inputs), "max_reply_bytes": max_output}  # never the expected outputs
    # lcb_runner's global limit for one candidate: (per-test timeout + 1) x tests + 5 s
    wall = (timeout_s + 1) * n_tests + 5
    program = "\n\n".join(source.read_text() for source in (Path(plain_data.__file__), SUPERVISOR_SOURCE,
                                                              DRIVER_SOURCE))
    result = run_untrusted(program, timeout_s=wall, memory_mb=memory_mb, files={"task.json": json.dumps(task)},
                           max_output_bytes=max_output)
    if result.status != "ok":
        message = "sandbox time limit" if result.status == "timeout" else f"sandbox {result.status}"
        return {"passed": False, "results": [-1] * n_tests, "message": message, "sandbox_status": result.status}
    try:
        results, message = grade_report(problem, plain_data.read_report(result.stdout, nonce))
    except plain_data.MalformedData as error:
        return {"passed": False, "results": [-1] * n_tests, "message": f"no valid report: {error}"[:500],
                "sandbox_status": result.status}
    passed = len(results) == n_tests and all(r is True for r in results)
    return {"passed": passed, "results": results, "message": message, "sandbox_status": result.status}


def grade_report(problem: LcbProblem, report: dict) -> tuple[list, str]:
    """lcb_runner's per-test results from the driver's report; MalformedData when the report is not valid."""
    outputs, stop = report.get("outputs"), report.get("stop")
    if not isinstance(outputs, list) or len(outputs) > len(problem.inputs):
        raise plain_data.MalformedData("outputs must be a list, at most one per test")
    if stop is None and len(outputs) != len(problem.inputs):
        raise plain_data.MalformedData(f"{len(outputs)} outputs for {len(problem.inputs)} tests")
    if stop is not None and not (isinstance(stop, list) and len(stop) == 2 and stop[0] in (-3, -4)
                                 and type(stop[0]) is int and isinstance(stop[1], str)
                                 and len(outputs) < len(problem.inputs)):
        raise plain_data.MalformedData(f"bad stop {stop!r}"[:300])
    results = []
    for output, expected in zip(outputs, problem.outputs):
        if problem.fn_name is None:
            if not isinstance(output, str):
                raise plain_data.MalformedData("a stdin problem's output must be a string")
            ok = lines_match(output, expected)
        else:
            try:
                want = json.loads(expected)
            except ValueError as error:  # a data problem, reported like the old in-sandbox comparison did
                return results + [-4], f"expected output is not JSON: {error}"[:500]
            ok = plain_data.decode(output) == want  # plain data only: no code of the candidate's runs here
        if not ok:
            return results + [-2], "wrong answer"
        results.append(True)
    if stop is not None:
        return results + [stop[0]], stop[1]
    return results, "passed"


def stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def lines_match(prediction: str, expected: str) -> bool:
    """lcb_runner's stdout rule: same number of stripped lines; each equal, or all its tokens equal as Decimals."""
    got, want = stripped_lines(prediction), stripped_lines(expected)
    if len(got) != len(want):
        return False
    for got_line, want_line in zip(got, want):
        if got_line == want_line:
            continue
        try:
            if [Decimal(t) for t in got_line.split()] != [Decimal(t) for t in want_line.split()]:
                return False
        except InvalidOperation:
            return False
    return True
