"""LiveCodeBench executor: release files, private-test decoding, date window, extraction, LCB's grading rules."""
import base64
import dataclasses
import json
import pickle
import sys
import zlib

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox needs Linux", allow_module_level=True)

from mgrpo.evaluation.code import evaluate_code  # noqa: E402
from mgrpo.evaluation.code import livecodebench as lcb  # noqa: E402


def compress(tests) -> str:
    """The release encoding: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def stdin_row(qid="s1", date="2024-05-01T00:00:00"):
    return {"question_title": "sum", "question_content": "Read a and b, print a+b.", "platform": "atcoder",
            "question_id": qid, "contest_id": "abc", "contest_date": date, "starter_code": "", "difficulty": "easy",
            "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
            "private_test_cases": compress([{"input": "10 20\n", "output": "30\n", "testtype": "stdin"},
                                            {"input": "-5 5\n", "output": "0\n", "testtype": "stdin"}]),
            "metadata": "{}"}


def call_row(qid="c1", date="2024-06-01T00:00:00"):
    starter = "class Solution:\n    def pairSum(self, nums: List[int], k: int) -> List[int]:\n        "
    return {"question_title": "pair", "question_content": "Return [sum(nums), k].", "platform": "leetcode",
            "question_id": qid, "contest_id": "weekly", "contest_date": date, "starter_code": starter,
            "difficulty": "easy",
            "public_test_cases": json.dumps([{"input": "[1, 2]\n3", "output": "[3, 3]", "testtype": "functional"}]),
            "private_test_cases": compress([{"input": "[]\n0", "output": "[0, 0]", "testtype": "functional"}]),
            "metadata": json.dumps({"func_name": "pairSum"})}


@pytest.fixture
def release(tmp_path):
    (tmp_path / "test.jsonl").write_text(json.dumps(stdin_row()) + "\n" + json.dumps(call_row()) + "\n")
    (tmp_path / "test2.jsonl").write_text(json.dumps(stdin_row("s2", "2025-01-10T00:00:00")) + "\n")
    return tmp_path


def test_private_tests_are_decoded_and_appended_after_public(release):
    problems = lcb.load_problems(release, release_version="release_v1")
    stdin_problem = problems[0]
    assert stdin_problem.inputs == ("1 2\n", "10 20\n", "-5 5\n")
    assert stdin_problem.outputs == ("3\n", "30\n", "0\n")
    assert stdin_problem.fn_name is None and problems[1].fn_name == "pairSum"


def test_release_versions_select_files_and_date_window_is_inclusive(release):
    assert [p.question_id for p in lcb.load_problems(release)] == ["s1", "c1", "s2"]
    assert [p.question_id for p in lcb.load_problems(release, release_version="release_v1")] == ["s1", "c1"]
    assert [p.question_id for p in lcb.load_problems(release, start_date="2024-06-01")] == ["c1", "s2"]
    assert [p.question_id for p in lcb.load_problems(release, end_date="2024-06-01")] == ["s1", "c1"]
    assert [p.question_id for p in lcb.load_problems(release, "2024-05-02", "2024-12-31")] == ["c1"]


def test_pickled_globals_in_private_tests_are_refused_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    row = stdin_row()
    row["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(lcb.DataError, match=r"test.jsonl:1: field 'private_test_cases'.*refusing to load global"):
        lcb.load_problems(tmp_path)


@pytest.mark.parametrize("field,value,message", [
    ("contest_date", "yesterday", "field 'contest_date'"),
    ("public_test_cases", "[{", "field 'public_test_cases'"),
    ("private_test_cases", "%%%", "field 'private_test_cases'"),
    ("metadata", "{nope", "field 'metadata'"),
])
def test_malformed_rows_name_the_file_line_and_field(tmp_path, field, value, message):
    row = stdin_row()
    row[field] = value
    (tmp_path / "test.jsonl").write_text(json.dumps(stdin_row("ok")) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(lcb.DataError, match=rf"test.jsonl:2: {message}"):
        lcb.load_problems(tmp_path)


def test_missing_field_is_named(tmp_path):
    row = stdin_row()
    del row["metadata"]
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(lcb.DataError, match=r"test.jsonl:1: missing field\(s\) \['metadata'\]"):
        lcb.load_problems(tmp_path)


def test_code_is_taken_from_the_last_fenced_block():
    response = "First try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(2)\n```\nDone."
    assert lcb.extract_code(response) == "print(2)"
    assert lcb.extract_code("no code at all") == ""


def test_prompt_follows_lcb_generic_template(release):
    stdin_problem, call_problem = lcb.load_problems(release, release_version="release_v1")
    assert "Read the inputs from stdin" in lcb.build_prompt(stdin_problem)
    assert "```python\n# YOUR CODE HERE\n```" in lcb.build_prompt(stdin_problem)
    assert call_problem.starter_code in lcb.build_prompt(call_problem)


@pytest.fixture
def problems(release):
    return lcb.load_problems(release, release_version="release_v1")


@pytest.mark.parametrize("code,passed,last", [
    ("a, b = map(int, input().split())\nprint(a + b)", True, True),
    # LCB compares tokens as Decimals: 3.000 equals 3
    ("import sys\nif __name__ == '__main__':\n    a, b = map(int, sys.stdin.readline().split())\n"
     "    print(f'{a + b}.000')", True, True),
    ("a, b = map(int, input().split())\nprint(a - b)", False, -2),  # right on none of the tests
    ("a, b = map(int, input().split())\nprint(a + b if a > 0 else 1)", False, -2),  # fails the last private test
    ("while True:\n    pass", False, -3),
    ("a = 1 / 0", False, -4),
])
def test_stdin_problem_is_scored_by_lcb_rules(problems, code, passed, last):
    verdict = lcb.score_code(problems[0], code, timeout_s=1.0)
    assert verdict["passed"] is passed
    assert verdict["results"][-1] == last


# lcb_runner's call_method stacks @patch("sys.stdin", StringIO(inputs)) over patches of sys.stdin.readline /
# readlines / read; mock enters stacked patches bottom-up, so those three are set on the process's own stdin
# before sys.stdin is swapped, and the program reads a plain StringIO (checked by running that decorator stack
# by hand): readline() keeps its newline and gives "" at the end, read() and readlines() give what is left.
TWO_SUMS = lcb.LcbProblem("sums", "t", "c", "atcoder", "easy", lcb.datetime(2024, 1, 1), "", ("2\n1 2\n3 4\n",),
                          ("3\n7\n",), None)


@pytest.mark.parametrize("code,passed", [
    # correct programs using common stdin idioms
    ("import sys\nn = int(sys.stdin.readline())\nd = sys.stdin.read().split()\n"
     "for i in range(n):\n    print(int(d[2 * i]) + int(d[2 * i + 1]))", True),
    ("import sys\nn = int(input())\nd = sys.stdin.read().split()\n"
     "for i in range(n):\n    print(int(d[2 * i]) + int(d[2 * i + 1]))", True),
    ("import sys\nfor line in sys.stdin.readlines()[1:]:\n    a, b = map(int, line.split())\n    print(a + b)", True),
    ("import sys\nsys.stdin.readline()\nfor line in sys.stdin:\n    a, b = map(int, line.split())\n"
     "    print(a + b)", True),
    ("import sys\nlines = sys.stdin.readlines()\nprint(len(lines[1]))\nprint(7)", False),  # '1 2\n' is 4 long
    ("import sys\nlines = sys.stdin.readlines()\nprint(len(lines[1]) - 1)\nprint(7)", True),
    ("import sys\nprint(len(sys.stdin.readline()) + 1)\nprint(7)", True),  # '2\n': 2 + 1 = 3
])
def test_stdin_is_read_as_lcb_runner_serves_it(code, passed):
    verdict = lcb.score_code(TWO_SUMS, code, timeout_s=2.0)
    assert verdict["passed"] is passed, verdict


@pytest.mark.parametrize("body,passed,last", [
    ("return (sum(nums), k)", True, True),  # tuples count as lists
    ("return [sum(nums), k + 1]", False, -2),
    ("while True:\n            pass", False, -3),
    ("return nums[5]", False, -4),
])
def test_call_based_problem_is_scored_by_lcb_rules(problems, body, passed, last):
    code = f"class Solution:\n    def pairSum(self, nums: List[int], k: int) -> List[int]:\n        {body}\n"
    verdict = lcb.score_code(problems[1], code, timeout_s=1.0)
    assert verdict["passed"] is passed
    assert verdict["results"][-1] == last


def test_output_of_a_correct_solution_does_not_fail_it(problems):
    # lcb_runner ignores what a call-based solution prints (and all stderr); 2 MB of it is under the wall
    # clock but over nothing here: the candidate's output never reaches the sandbox's 4 MB cap
    noisy = ("import sys, os\nclass Solution:\n    def pairSum(self, nums: List[int], k: int) -> List[int]:\n"
             "        print('x' * 2_000_000)\n        sys.stderr.write('y' * 2_000_000)\n"
             "        os.write(1, b'z' * 2_000_000)\n        return [sum(nums), k]\n")
    verdict = lcb.score_code(problems[1], noisy, timeout_s=2.0)
    assert verdict["passed"] is True, verdict
    # a stdin solution's stdout is still what is graded
    assert lcb.score_code(problems[0], "a, b = map(int, input().split())\nprint(a + b)\nprint('extra')",
                          timeout_s=1.0)["results"][-1] == -2


# Wrong candidates that attack the grader from inside the sandbox (security review: each was scored PASSED when
# the driver compared with the expected outputs inside the candidate's process).
HOSTILE = {
    # stdin problem: walk the frames up to the grader's expected output and print it
    "read_expected_from_frames": (0, "import sys\nf = sys._getframe()\n"
                                     "while f and 'test_output' not in f.f_locals: f = f.f_back\n"
                                     "print(f.f_locals['test_output'] if f else 'x')\n"),
    # stdin problem: find the nonce and the verdict channel in main()'s frame, write a passing verdict, exit 0
    "forge_verdict_nonce": (0, "import sys, os, json\nf = sys._getframe()\n"
                               "while f and 'nonce' not in f.f_locals: f = f.f_back\n"
                               "o = f.f_locals['out']\n"
                               "o.write('\\n' + f.f_locals['nonce'] + ' ' + json.dumps({'results': [True, True, True], "
                               "'message': 'passed'}) + '\\n')\no.flush()\nos._exit(0)\n"),
    # call-based problem: an object equal to everything
    "eq_always_true": (1, "class Solution:\n    def pairSum(self, nums, k):\n        class T:\n"
                          "            def __eq__(s, o): return True\n        return T()\n"),
    # the same through a subclass of list
    "list_subclass_eq_always_true": (1, "class Solution:\n    def pairSum(self, nums, k):\n"
                                        "        class T(list):\n            def __eq__(s, o): return True\n"
                                        "        return T()\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_wrong_candidate_that_attacks_the_grader_is_not_passed(problems, name):
    index, code = HOSTILE[name]
    verdict = lcb.score_code(problems[index], code, timeout_s=2.0)
    assert verdict["passed"] is False, verdict


def test_expected_outputs_never_reach_the_sandbox(problems, monkeypatch):
    seen = []
    real_run = lcb.run_untrusted

    def run(program, *args, **kwargs):
        seen.append(kwargs["files"]["task.json"])
        return real_run(program, *args, **kwargs)

    monkeypatch.setattr(lcb, "run_untrusted", run)
    assert lcb.score_code(problems[0], "a, b = map(int, input().split())\nprint(a + b)", timeout_s=1.0)["passed"]
    task = json.loads(seen[0])
    assert set(task) == {"nonce", "code", "fn_name", "timeout_s", "inputs", "max_reply_bytes"}
    assert task["inputs"] == list(problems[0].inputs)


@pytest.mark.parametrize("index,code", [
    (0, "a, b = map(int, input().split())\nprint(a + b)"),
    (1, "class Solution:\n    def pairSum(self, nums, k):\n        return [sum(nums), k]"),
])
def test_a_run_whose_sandbox_status_is_not_ok_never_passes(problems, monkeypatch, index, code):
    # a correct candidate's run, with its well-formed report on stdout, whose status is then made "error" or
    # "timeout" (a candidate that prints a report and then gets itself killed): never a pass
    assert lcb.score_code(problems[index], code, timeout_s=1.0)["passed"] is True
    real_run = lcb.run_untrusted
    for status in ("error", "timeout"):
        def run(program, *args, **kwargs):
            result = real_run(program, *args, **kwargs)
            assert result.status == "ok" and result.stdout.strip()  # the report is there
            return dataclasses.replace(result, status=status)

        monkeypatch.setattr(lcb, "run_untrusted", run)
        verdict = lcb.score_code(problems[index], code, timeout_s=1.0)
        assert (verdict["passed"], verdict["sandbox_status"]) == (False, status), verdict


# CORRECT candidates that cancel the per-test timer (setitimer 0, SIGALRM ignored) and sleep 2.5 s on the first test:
# past its 1 s limit (lcb_runner: -3), well inside the sandbox's wall limit ((1 + 1) x tests + 5 s). They passed
# when the limit was enforced in the candidate's own process.
CANCEL_TIMER = "import signal, time\n"
SLOW_FIRST_TEST = {
    "stdin": (0, CANCEL_TIMER + "signal.setitimer(signal.ITIMER_REAL, 0)\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                 "a, b = map(int, input().split())\nif a == 1:\n    time.sleep(2.5)\nprint(a + b)\n"),
    "call_based": (1, CANCEL_TIMER + "class Solution:\n    def pairSum(self, nums, k):\n"
                      "        signal.setitimer(signal.ITIMER_REAL, 0)\n"
                      "        signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                      "        if nums == [1, 2]:\n            time.sleep(2.5)\n        return [sum(nums), k]\n"),
}


@pytest.mark.parametrize("kind", sorted(SLOW_FIRST_TEST))
def test_a_correct_candidate_that_cancels_its_timer_fails_on_the_test_past_its_limit(problems, kind):
    index, code = SLOW_FIRST_TEST[kind]
    verdict = lcb.score_code(problems[index], code, timeout_s=1.0)
    assert (verdict["passed"], verdict["results"], verdict["sandbox_status"]) == (False, [-3], "ok"), verdict
    fast = lcb.score_code(problems[index], code.replace("time.sleep(2.5)", "pass"), timeout_s=1.0)
    assert fast["passed"], fast  # the same candidate without the sleep


def test_a_slow_compile_is_a_compile_error(problems):
    slow = (CANCEL_TIMER + "signal.setitimer(signal.ITIMER_REAL, 0)\ntime.sleep(30)\n"
            "class Solution:\n    def pairSum(self, nums, k):\n        return [sum(nums), k]\n")
    verdict = lcb.score_code(problems[1], slow, timeout_s=1.0)
    assert (verdict["passed"], verdict["results"], verdict["sandbox_status"]) == (False, [-4], "ok"), verdict
    assert "compile error" in verdict["message"]


# At load time (the class body runs when the code is compiled), look for the test inputs (the private input
# "[]\n0", the inputs list) or the driver's state (task, nonce) in every object the collector tracks and in every
# frame; answer right only if something was found. Its own constants hold none of the values it looks for.
SCAN_FOR_TASK = (
    "import gc, sys\n"
    "def _leaked():\n"
    "    private = '[]' + chr(10) + '0'\n"
    "    names, keys = {'task', 'nonce', 'inputs', 'test_input'}, {'nonce', 'inputs', 'timeout_s'}\n"
    "    for o in gc.get_objects():\n"
    "        try:\n"
    "            if type(o) in (list, tuple) and private in o:\n"
    "                return True\n"
    "            if type(o) is dict and keys & set(k for k in o if type(k) is str):\n"
    "                return True\n"
    "        except Exception:\n"
    "            pass\n"
    "    f = sys._getframe()\n"
    "    while f is not None:\n"
    "        if names & set(f.f_locals):\n"
    "            return True\n"
    "        f = f.f_back\n"
    "    return False\n"
    "class Solution:\n"
    "    LEAKED = _leaked()\n"
    "    def pairSum(self, nums, k):\n"
    "        return [sum(nums), k] if self.LEAKED else [-1, -1]\n"
)


def test_at_load_time_the_candidate_finds_no_input_and_no_driver_state(problems):
    verdict = lcb.score_code(problems[1], SCAN_FOR_TASK, timeout_s=2.0)
    assert (verdict["passed"], verdict["results"]) == (False, [-2]), verdict
    # control: the scan itself runs fine (the same candidate, answering right whatever it found, passes)
    assert lcb.score_code(problems[1], SCAN_FOR_TASK.replace("if self.LEAKED", "if True"), timeout_s=2.0)["passed"]


def test_the_supervisor_is_out_of_the_workers_reach(problems):
    # the supervisor is not dumpable: its stdout (the report's channel), memory and environment cannot be opened
    # through /proc by the worker (same uid); a candidate that could would answer right here
    reach = ("import os\nclass Solution:\n    def pairSum(self, nums, k):\n        ppid = os.getppid()\n"
             "        for path, mode in [('fd/1', 'wb'), ('mem', 'rb'), ('environ', 'rb')]:\n"
             "            try:\n                open(f'/proc/{ppid}/{path}', mode).close()\n"
             "                return [sum(nums), k]\n            except OSError:\n                pass\n"
             "        return [-1, -1]\n")
    assert lcb.score_code(problems[1], reach, timeout_s=2.0)["results"] == [-2]
    # killing the supervisor (a correct answer otherwise) only fails the candidate: no report from a killed run
    kill = ("import os, signal\nclass Solution:\n    def pairSum(self, nums, k):\n"
            "        os.kill(os.getppid(), signal.SIGKILL)\n        return [sum(nums), k]\n")
    verdict = lcb.score_code(problems[1], kill, timeout_s=2.0)
    assert (verdict["passed"], verdict["sandbox_status"]) == (False, "error"), verdict


def test_state_kept_across_tests_still_works(problems):
    # one worker process runs every test: module state persists between calls (right only from the same process,
    # with the earlier tests seen)
    memo = ("import os\n_seen, _pids = [], set()\nclass Solution:\n    def pairSum(self, nums, k):\n"
            "        _seen.append(k)\n        _pids.add(os.getpid())\n"
            "        ok = len(_pids) == 1 and (k == 3 or _seen[:1] == [3])\n"
            "        return [sum(nums), k] if ok else [-1, -1]\n")
    assert lcb.score_code(problems[1], memo, timeout_s=2.0)["passed"]


def test_host_side_comparison_follows_lcb_rules(problems):
    assert lcb.lines_match("3.000\n", "3\n") and lcb.lines_match("  1 2 \n\n", "1 2")
    assert not lcb.lines_match("3\n4\n", "3\n") and not lcb.lines_match("abc", "abd")
    report = {"outputs": [[3, 3], {"unserialisable": "T"}], "stop": None}
    assert lcb.grade_report(problems[1], report) == ([True, -2], "wrong answer")
    with pytest.raises(lcb.plain_data.MalformedData):  # a stdin problem's output is text
        lcb.grade_report(problems[0], {"outputs": [3, 30, 0], "stop": None})
    with pytest.raises(lcb.plain_data.MalformedData):  # one output per test, unless the run stopped early
        lcb.grade_report(problems[0], {"outputs": ["3\n"], "stop": None})
    assert lcb.grade_report(problems[0], {"outputs": ["3\n"], "stop": [-3, "time limit exceeded"]}) == (
        [True, -3], "time limit exceeded")


class ScriptedGenerator:
    def __init__(self, answers):
        self.answers = answers  # one list of responses per prompt

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "<|user|>" + messages[-1]["content"]

    def generate(self, prompts, n, params):
        assert all(p.startswith("<|user|>") for p in prompts) and params["temperature"] == 0.8
        return [list(a) for a in self.answers]


def test_evaluate_code_writes_pass_at_1_results(release, tmp_path):
    fence = "```python\n{}\n```"
    answers = [
        [fence.format("a, b = map(int, input().split())\nprint(a + b)"), fence.format("print(0)")],
        [fence.format("class Solution:\n    def pairSum(self, nums, k):\n        return [sum(nums), k]")] * 2,
    ]
    out = tmp_path / "out"
    summary = evaluate_code("livecodebench", ScriptedGenerator(answers), release, out,
                            {"samples": 2, "release_version": "release_v1", "timeout_s": 1.0, "model": "tiny"})
    # problem 1: 1 of 2 samples pass; problem 2: 2 of 2 -> mean 0.75; stderr = std([0.5, 1], ddof=1) / sqrt(2)
    assert summary["value"] == pytest.approx(0.75)
    assert summary["stderr"] == pytest.approx(0.25)
    assert (summary["metric"], summary["n_problems"], summary["samples_per_problem"]) == ("pass@1", 2, 2)
    assert summary["model"] == "tiny" and summary["generation"]["temperature"] == 0.8
    assert json.loads((out / "livecodebench.json").read_text()) == summary
    rows = [json.loads(line) for line in (out / "livecodebench.samples.jsonl").read_text().splitlines()]
    assert [r["pass@1"] for r in rows] == [0.5, 1.0]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_unknown_benchmark_and_setting_are_refused(release, tmp_path):
    with pytest.raises(ValueError, match="unknown code benchmark 'humaneval'"):
        evaluate_code("humaneval", ScriptedGenerator([]), release, tmp_path, {})
    with pytest.raises(ValueError, match="unknown setting"):
        evaluate_code("livecodebench", ScriptedGenerator([]), release, tmp_path, {"temprature": 0.1})


def test_evaluate_code_accepts_eval_settings_and_message_list_chat_templates(release, tmp_path):
    from mgrpo.evaluation.generation import EvalSettings, SamplingParams

    class MessageGenerator:
        name, backend = "scripted", "fake"

        def apply_chat_template(self, messages, add_generation_prompt=True):
            assert messages[0]["role"] == "user"
            return "<|user|>" + messages[0]["content"]

        def generate(self, prompts, n, params):
            assert isinstance(params, SamplingParams) and params.temperature == 0.5
            return [["```python\nprint(3)\n```"] * n for _ in prompts]

    settings = EvalSettings(model="m", backend="fake", sampling=SamplingParams(temperature=0.5), samples=1,
                            limit=1, extra={"release_version": "release_v1", "timeout_s": 1.0})
    summary = evaluate_code("livecodebench", MessageGenerator(), release, tmp_path, settings)
    # print(3) passes the first (public) test only, so the problem fails
    assert (summary["value"], summary["n_problems"], summary["generation"]["temperature"]) == (0.0, 1, 0.5)
