"""MBPP+ through evalplus 0.3.1 inside the sandbox, on a hand-written two-problem MbppPlus file."""
import json
import shutil
import sys
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)
pytest.importorskip("evalplus", reason="evalplus (the eval extra) is not installed")

from mgrpo.evaluation.code import evaluate_code  # noqa: E402
from mgrpo.evaluation.code import mbpp_plus  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "mbpp_plus_two_problems.jsonl"
# Mbpp/2 expects the shared elements; Mbpp/17 is 4*a for ints AND floats (plus_input has 0.5 and 7.25).
RIGHT_SIMILAR = "```python\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n```"
WRONG_PERIMETER = "```python\ndef square_perimeter(a):\n    return 4 * int(a)\n```"  # passes base, fails plus
RIGHT_PERIMETER = "Here:\n```python\ndef square_perimeter(a):\n    return 4 * a\n```\nDone."


@pytest.fixture(scope="module")
def problems():
    return mbpp_plus.load_problems(FIXTURE)


def test_right_solution_passes_base_and_plus(problems):
    solution = mbpp_plus.extract_solution(RIGHT_SIMILAR, problems[0])
    verdict = mbpp_plus.score_solution(problems[0], solution)
    assert (verdict["passed"], verdict["base_status"], verdict["plus_status"]) == (True, "pass", "pass")


def test_solution_wrong_only_on_plus_inputs_fails(problems):
    solution = mbpp_plus.extract_solution(WRONG_PERIMETER, problems[1])
    verdict = mbpp_plus.score_solution(problems[1], solution)
    assert (verdict["passed"], verdict["base_status"], verdict["plus_status"]) == (False, "pass", "fail")


class ScriptedGenerator:
    def __init__(self, answers):
        self.answers = answers

    def apply_chat_template(self, user_message):
        return "<|user|>" + user_message

    def generate(self, prompts, n, params):
        assert "similar_elements" in prompts[0] and "square_perimeter" in prompts[1]
        return [[a] for a in self.answers]


def test_evaluate_code_scores_the_two_problem_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALPLUS_TIMEOUT_PER_TASK", "20")  # the hang trap: must not reach evalplus
    summary = evaluate_code("mbpp_plus", ScriptedGenerator([RIGHT_SIMILAR, WRONG_PERIMETER]), FIXTURE,
                            tmp_path, {"model": "tiny", "seed": 3})
    assert summary["value"] == pytest.approx(0.5)  # one of two problems solved
    assert summary["stderr"] == pytest.approx(0.5)  # std([1, 0], ddof=1) / sqrt(2)
    assert summary["n_problems"] == 2 and summary["metric"] == "pass@1"
    assert summary["dataset"]["source"] == "evalplus/mbppplus" and len(summary["dataset"]["revision"]) == 32
    rows = [json.loads(line) for line in (tmp_path / "mbpp_plus.samples.jsonl").read_text().splitlines()]
    assert [r["problem_id"] for r in rows] == ["Mbpp/2", "Mbpp/17"]
    assert [r["verdicts"][0]["passed"] for r in rows] == [True, False]
    assert not list(tmp_path.glob("*eval_results.json"))  # evalplus's results cache is never written or read


def test_missing_field_names_file_line_and_field(tmp_path):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    del rows[1]["plus_input"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(mbpp_plus.DataError, match=r"bad.jsonl:2: missing field\(s\) \['plus_input'\]"):
        mbpp_plus.load_problems(bad)


def test_wrong_field_type_is_named(tmp_path):
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    rows[0]["atol"] = "zero"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(mbpp_plus.DataError, match=r"bad.jsonl:1: field 'atol'"):
        mbpp_plus.load_problems(bad)


def test_loading_never_downloads(tmp_path, monkeypatch):
    import evalplus.data.mbpp as evalplus_mbpp

    def no_download(*args, **kwargs):
        raise AssertionError("evalplus tried to download data")

    monkeypatch.setattr(evalplus_mbpp, "make_cache", no_download)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(FIXTURE, copy)
    assert [p["task_id"] for p in mbpp_plus.load_problems(copy)] == ["Mbpp/2", "Mbpp/17"]
