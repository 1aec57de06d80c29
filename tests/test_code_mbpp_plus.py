"""MBPP+ through evalplus 0.3.1 inside the sandbox, on a hand-written two-problem MbppPlus file."""
import dataclasses
import json
import os
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


# Wrong solutions of Mbpp/17 that attack the grader from inside the sandbox (security review: each of them was
# scored PASSED when evalplus compared inside the candidate's process).
PERIMETER = "def square_perimeter(a):\n"
HOSTILE_PERIMETERS = {
    # evalplus compares `out == exp`: an object equal to everything
    "eq_always_true": PERIMETER + "    class T:\n        def __eq__(s, o): return True\n    return T()\n",
    # the same through a subclass of a plain type
    "int_subclass_eq_always_true": PERIMETER + "    class T(int):\n        def __eq__(s, o): return True\n"
                                               "        __hash__ = int.__hash__\n    return T(0)\n",
    # walk up to evalplus's unsafe_execute and set its shared result values, then leave without a report
    "forge_shared_stat": PERIMETER + (
        "    import sys, posix\n    f = sys._getframe()\n    while f and 'stat' not in f.f_locals: f = f.f_back\n"
        "    if f:\n        L = f.f_locals; L['stat'].value = 0; n = len(L['inputs'])\n"
        "        for i in range(n): L['details'][i] = True\n        L['progress'].value = n\n"
        "    posix._exit(0)\n"),
    # find the driver's nonce in main()'s frame, print a forged verdict line, kill the parent, exit 0
    "forge_nonce_kill_driver": PERIMETER + (
        "    import sys, posix, json\n    f = sys._getframe()\n"
        "    while f and 'nonce' not in f.f_locals: f = f.f_back\n"
        "    posix.write(1, ('\\n' + f.f_locals['nonce'] + ' ' + json.dumps({'base_status': 'pass', "
        "'plus_status': 'pass'}) + '\\n').encode())\n"
        "    try:\n        posix.kill(posix.getppid(), 9)\n    except OSError:\n        pass\n    posix._exit(0)\n"),    # the supervisor is its parent now: forge a line on every fd it can reach, then kill the supervisor
    "forge_line_kill_supervisor": PERIMETER + (
        "    import posix, json\n    for fd in range(64):\n        try:\n"
        "            posix.write(fd, ('\\nffff ' + json.dumps({'base': {'outputs': [], 'stop': None}}) + '\\n').encode())\n"
        "        except OSError:\n            pass\n"
        "    posix.kill(posix.getppid(), 9)\n    return 4 * int(a)\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PERIMETERS))
def test_wrong_solution_that_attacks_the_grader_is_not_passed(problems, name):
    verdict = mbpp_plus.score_solution(problems[1], HOSTILE_PERIMETERS[name], timeout_s=60)
    assert verdict["passed"] is False, verdict


def test_a_run_whose_sandbox_status_is_not_ok_never_passes(problems, monkeypatch):
    # a correct solution's run, with a well-formed report on stdout, whose status is then made "error"/"timeout"
    # (e.g. the candidate printed its report and had the sandbox kill it): never a pass
    solution = mbpp_plus.extract_solution(RIGHT_PERIMETER, problems[1])
    assert mbpp_plus.score_solution(problems[1], solution)["passed"] is True
    real_run = mbpp_plus.run_untrusted
    for status in ("error", "timeout"):
        def run(program, *args, **kwargs):
            result = real_run(program, *args, **kwargs)
            if '"mode": "groundtruth"' not in kwargs["files"]["task.json"]:  # the candidate's run
                assert result.status == "ok" and "plus" in result.stdout  # the report is there
                result = dataclasses.replace(result, status=status)
            return result

        monkeypatch.setattr(mbpp_plus, "run_untrusted", run)
        verdict = mbpp_plus.score_solution(problems[1], solution)
        assert (verdict["passed"], verdict["sandbox_status"]) == (False, status), verdict


def test_expected_outputs_never_reach_the_candidate(problems, monkeypatch):
    seen = []
    real_run = mbpp_plus.run_untrusted

    def run(program, *args, **kwargs):
        seen.append(json.loads(kwargs["files"]["task.json"]))
        return real_run(program, *args, **kwargs)

    monkeypatch.setattr(mbpp_plus, "run_untrusted", run)
    monkeypatch.setattr(mbpp_plus, "_ground_truth", {})  # computed afresh: its own sandbox run
    mbpp_plus.score_solution(problems[1], mbpp_plus.extract_solution(RIGHT_PERIMETER, problems[1]))
    assert [task["mode"] for task in seen] == ["groundtruth", "candidate"]
    candidate = json.dumps(seen[1])
    assert "canonical_solution" not in candidate and "4*a" not in candidate and "prompt" not in seen[1]


def test_host_check_follows_evalplus_special_oracles_and_float_tolerance():
    from mgrpo.evaluation.code.plain_data import Unserialisable

    status = mbpp_plus.evalplus_phase_status
    # output-not-None tasks (re.Match results cannot be plain data): any non-None output matches True
    assert status("check_str", 0, [["a"], ["b"]], [True, False], [Unserialisable("re.Match"), None], None) == "pass"
    assert status("check_str", 0, [["a"]], [True], [None], None) == "fail"
    # set-equality tasks; an unserialisable output is wrong anywhere else
    assert status("similar_elements", 0, [[(1, 2), (2, 1)]], [(1, 2)], [(2, 1)], None) == "pass"
    assert status("f", 0, [[1]], [2], [Unserialisable("T")], None) == "fail"
    # floats get atol 1e-6 (and must keep their type), ints must be exact
    assert status("f", 0, [[1]], [0.3], [0.1 + 0.2], None) == "pass"
    assert status("f", 0, [[1]], [0.3], [0.30001], None) == "fail"
    assert status("f", 0, [[1]], [[0.3, 1.0]], [(0.1 + 0.2, 1.0)], None) == "fail"
    # every output right, then the candidate stopped: an exception or per-input timeout fails, the phase budget
    # running out is evalplus's "timeout"; a wrong output before the stop fails
    assert status("f", 0, [[1], [2]], [1, 2], [1], ["error", "x"]) == "fail"
    assert status("f", 0, [[1], [2]], [1, 2], [1], ["phase_timeout", "x"]) == "timeout"
    assert status("f", 0, [[1], [2]], [1, 2], [0], ["phase_timeout", "x"]) == "fail"


# Mbpp/2 is a set-equality task: evalplus 0.3.1's unsafe_execute grades it by `set(out) == set(exp)`, so any iterable
# of the right elements passes there (checked by hand with evalplus.eval.untrusted_check, outside any sandbox:
# pass/pass for each of these), and one of the wrong elements, or a value that is not iterable, fails.
SIMILAR = "def similar_elements(a, b):\n    return "


@pytest.mark.parametrize("body,expected", [
    ("(x for x in a if x in b)", (True, "pass", "pass")),                  # a generator
    ("filter(lambda x: x in b, a)", (True, "pass", "pass")),               # filter object
    ("map(lambda x: x, set(a) & set(b))", (True, "pass", "pass")),         # map object
    ("dict.fromkeys(x for x in a if x in b).keys()", (True, "pass", "pass")),  # dict view
    ("(x for x in a if x not in b)", (False, "fail", "fail")),             # an iterable of the wrong elements
    ("len(set(a) & set(b))", (False, "fail", "fail")),                     # not iterable: set(out) raises
])
def test_set_equality_tasks_take_any_iterable_as_evalplus_does(problems, body, expected):
    verdict = mbpp_plus.score_solution(problems[0], SIMILAR + body)
    assert (verdict["passed"], verdict["base_status"], verdict["plus_status"]) == expected, verdict


def test_set_equality_tasks_refuse_outputs_that_flood_one_hash():
    from test_code_plain_data import colliding_pairs

    # the host builds set(out) for set-equality tasks: a list of distinct tuples with one hash would make that
    # quadratic; it is refused (a wrong answer), even where the expected set is the same
    flood = [tuple(p) for p in colliding_pairs(5000)]
    assert mbpp_plus.evalplus_phase_status("similar_elements", 0, [[1]], [flood], [flood], None) == "fail"
    assert mbpp_plus.evalplus_phase_status("similar_elements", 0, [[1]], [flood[:5]], [flood[4::-1]], None) == "pass"


def test_candidate_report_size_comes_from_the_expected_outputs(problems):
    truth = mbpp_plus.ground_truth(problems[1])
    limit = mbpp_plus.candidate_report_bytes(truth)
    assert mbpp_plus.CANDIDATE_REPORT_FLOOR_BYTES <= limit < mbpp_plus.MAX_REPORT_BYTES
    # an output far larger than right outputs could take (here ~6 MB of empty lists, as a string) is cut off
    flood = "def square_perimeter(a):\n    return '[' + '[],' * 2_000_000 + '[]]'\n"
    result = mbpp_plus.score_solution(problems[1], flood)
    assert not result["passed"] and "over the limit" in result["message"], result
    # what the candidate writes to its own fd 1 never reaches the report (evalplus ignores it too)
    noisy = ("def square_perimeter(a):\n    import posix\n    posix.write(1, b'[' + b'[],' * 2_000_000 + b'[]]')\n"
             "    return 4 * a\n")
    assert mbpp_plus.score_solution(problems[1], noisy)["passed"]


# The reviewer's candidate: cancels evalplus's in-process timer, sleeps far beyond its limits, then writes the right
# outputs as the driver's own report and exits. (The supervisor holds the inputs and the report's channel now: the
# frame walk finds neither.)
SLOW_FORGED = ("def square_perimeter(a):\n"
               "    import sys, time, posix, signal\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
               "    f = sys._getframe()\n"
               "    while 'phases' not in f.f_locals: f = f.f_back\n"
               "    phases = f.f_locals['phases']\n"
               "    while 'write' not in f.f_locals: f = f.f_back\n"
               "    time.sleep(8)\n"
               "    f.f_locals['write']({ph: {'outputs': [4 * x[0] for x in phases[ph]], 'stop': None} for ph in phases})\n"
               "    posix._exit(0)\n")
# A CORRECT candidate that cancels evalplus's timers (setitimer 0, SIGALRM ignored) and sleeps 3 s on one input:
# past that input's 1 s limit (evalplus: fail), well inside the phase's budget (min(60, 3 x 1 s) + 2 = 5 s). It
# passed when the limits were enforced in its own process.
SLOW_ONE_INPUT = ("import signal, time\n"
                  "def square_perimeter(a):\n"
                  "    signal.setitimer(signal.ITIMER_REAL, 0)\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                  "    if a == 5:\n        time.sleep(3)\n    return 4 * a\n")


def test_a_candidate_that_cancels_its_timers_is_still_bounded_by_the_phase_budgets(problems, monkeypatch):
    monkeypatch.setattr(mbpp_plus, "STARTUP_ALLOWANCE_S", 3.0, raising=False)  # short test (a run starts in ~1.5 s)
    result = mbpp_plus.score_solution(problems[1], SLOW_FORGED, timeout_s=60, min_time_limit=0.1,
                                      gt_time_limit_factor=1.0)
    assert not result["passed"], result
    right = mbpp_plus.score_solution(problems[1], "def square_perimeter(a):\n    return 4 * a\n", timeout_s=60,
                                     min_time_limit=0.1, gt_time_limit_factor=1.0)
    assert right["passed"], right
    limits = {"base": [0.1, 0.1], "plus": [0.1, 0.1]}
    assert mbpp_plus.candidate_wall_budget(limits) == pytest.approx(3.0 + 2 * (0.2 + mbpp_plus.PHASE_GRACE_S))


def test_a_correct_candidate_that_cancels_its_timers_fails_on_the_input_past_its_limit(problems):
    assert [args[0] for args in problems[1]["base_input"]] == [10, 5, 4]  # the slow input is the second
    result = mbpp_plus.score_solution(problems[1], SLOW_ONE_INPUT)  # evalplus's limits: max(1 s, 4 x reference)
    assert (result["passed"], result["base_status"], result["sandbox_status"]) == (False, "fail", "ok"), result
    assert "base stopped: input 1: time limit" in result["message"], result
    # the same candidate without the sleep passes
    assert mbpp_plus.score_solution(problems[1], SLOW_ONE_INPUT.replace("time.sleep(3)", "pass"))["passed"]


def test_a_slow_load_is_the_phase_budget_running_out(problems):
    # loading counts against the phase (evalplus): a candidate that cancels its timers and sleeps at load time
    slow_load = "import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0)\ntime.sleep(30)\n" + RIGHT_PERIMETER_CODE
    result = mbpp_plus.score_solution(problems[1], slow_load, min_time_limit=0.1, gt_time_limit_factor=1.0)
    assert (result["passed"], result["base_status"], result["plus_status"]) == (False, "timeout", "timeout"), result
    assert "loading the code took too long" in result["message"]


RIGHT_PERIMETER_CODE = "def square_perimeter(a):\n    return 4 * a\n"
# At load time, look for the task's inputs (Mbpp/17's plus input 7.25, the base input list) or the driver's state
# (task, phases, nonce, the report writer) in every object the collector tracks and in every frame; answer right
# only if something was found. Built so that its own constants hold none of the values it looks for.
SCAN_FOR_TASK = (
    "import gc, sys\n"
    "def _leaked():\n"
    "    plus_value, names = float('7.' + '25'), {'task', 'phases', 'nonce', 'inputs', 'out_fd', 'time_limits'}\n"
    "    keys = {'nonce', 'base_input', 'plus_input', 'time_limits', 'solution'}\n"
    "    base_inputs = [[int('1' + '0')], [int('5')], [int('4')]]\n"
    "    for o in gc.get_objects():\n"
    "        try:\n"
    "            if type(o) in (list, tuple) and o is not base_inputs and (plus_value in o or o == base_inputs):\n"
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
    "LEAKED = _leaked()\n"
)


def test_at_load_time_the_candidate_finds_no_input_and_no_driver_state(problems):
    spy = SCAN_FOR_TASK + "def square_perimeter(a):\n    return 4 * a if LEAKED else -1\n"
    result = mbpp_plus.score_solution(problems[1], spy)
    assert (result["passed"], result["base_status"], result["plus_status"]) == (False, "fail", "fail"), result
    # control: the scan itself runs fine (a candidate that scans, then answers right, passes)
    assert mbpp_plus.score_solution(problems[1], SCAN_FOR_TASK + RIGHT_PERIMETER_CODE)["passed"]


def test_state_kept_across_the_inputs_of_a_phase_still_works(problems):
    # memoisation: one worker process runs all the inputs of a phase, so module state persists between calls
    # (right only if the calls before this one in the phase were seen, in the same process)
    memo = ("import os\n_seen, _pids = [], set()\n"
            "def square_perimeter(a):\n    _seen.append(a)\n    _pids.add(os.getpid())\n"
            "    first = a in (10, 0.5)  # the first input of base, of plus\n"
            "    return 4 * a if len(_pids) == 1 and (first or len(_seen) > 1) else -1\n")
    assert mbpp_plus.score_solution(problems[1], memo)["passed"]


# At load time in the base phase (no pid file yet), fork a background process (posix.fork, io.open: evalplus's
# guard removes os.fork and builtins.open) that writes its pid to /tmp/bg_pid (the sandbox's private /tmp, shared by
# both phases), then loops forever, touching /tmp/bg_beat every 50 ms. At load time in the plus phase, look at /proc:
# SWEPT is True only if the pid file exists (the background process did run), that pid is no longer a live process,
# and no live process is left but pid 1 (the PID namespace's init), the supervisor (our parent) and this worker. The
# answer is right only when SWEPT, so the plus phase passes only if the background process is gone. In the base
# phase the answer is always right (there the unused plus worker also exists, forked at the start).
BACKGROUND_SURVIVOR = (
    "import io, os, posix, time\n"
    "def _live():\n"
    "    pids = set()\n"
    "    for name in os.listdir('/proc'):\n"
    "        if not name.isdigit():\n"
    "            continue\n"
    "        try:\n"
    "            stat = io.open('/proc/' + name + '/stat').read()\n"
    "        except (OSError, ValueError):\n"
    "            continue\n"
    "        if stat[stat.rfind(')') + 2] != 'Z':\n"
    "            pids.add(int(name))\n"
    "    return pids\n"
    "PHASE = 'plus' if os.path.exists('/tmp/bg_pid') else 'base'\n"
    "SWEPT = False\n"
    "if PHASE == 'base':\n"
    "    if posix.fork() == 0:\n"
    "        with io.open('/tmp/bg_pid', 'w') as f:\n"
    "            f.write(str(os.getpid()))\n"
    "        while True:\n"
    "            io.open('/tmp/bg_beat', 'w').write(str(time.time()))\n"
    "            time.sleep(0.05)\n"
    "    while not os.path.exists('/tmp/bg_pid'):\n"
    "        time.sleep(0.01)\n"
    "    time.sleep(0.05)  # the pid written in full\n"
    "else:\n"
    "    background = int(io.open('/tmp/bg_pid').read())\n"
    "    others = _live() - {1, os.getppid(), os.getpid()}\n"
    "    SWEPT = background not in others and not others\n"
    "def square_perimeter(a):\n"
    "    return 4 * a if PHASE == 'base' or SWEPT else -1\n"
)


def test_a_background_process_forked_in_the_base_phase_is_gone_in_the_plus_phase(problems):
    result = mbpp_plus.score_solution(problems[1], BACKGROUND_SURVIVOR)
    assert (result["passed"], result["base_status"], result["plus_status"]) == (True, "pass", "pass"), result


# The same, hidden as a zombie (security review): the background process starts a thread, then its main thread
# leaves alone (a bare SYS_exit, not exit_group). /proc/<pid>/stat then says "Z" and the thread runs on, touching
# /tmp/bg_beat; a sweep that skipped zombies left it running into the plus phase (plus failed here). At plus load
# time SWEPT is True only if the beat has stopped.
ZOMBIE_LEADER_SURVIVOR = (
    "import ctypes, io, os, posix, threading, time\n"
    "PHASE = 'plus' if os.path.exists('/tmp/bg_beat') else 'base'\n"
    "SWEPT = False\n"
    "if PHASE == 'base':\n"
    "    if posix.fork() == 0:\n"
    "        def _beat():\n"
    "            while True:\n"
    "                io.open('/tmp/bg_beat.new', 'w').write(repr(time.time()))\n"
    "                posix.rename('/tmp/bg_beat.new', '/tmp/bg_beat')\n"
    "                time.sleep(0.05)\n"
    "        threading.Thread(target=_beat).start()\n"
    "        ctypes.CDLL(None).syscall({exit_nr}, 0)  # SYS_exit: the main thread only\n"
    "    while not os.path.exists('/tmp/bg_beat'):\n"
    "        time.sleep(0.01)\n"
    "else:\n"
    "    first = io.open('/tmp/bg_beat').read()\n"
    "    time.sleep(0.3)\n"
    "    SWEPT = io.open('/tmp/bg_beat').read() == first\n"
    "def square_perimeter(a):\n"
    "    return 4 * a if PHASE == 'base' or SWEPT else -1\n"
)


def test_a_background_process_hidden_as_a_zombie_leader_is_gone_in_the_plus_phase(problems):
    import platform

    exit_nr = {"x86_64": 60, "aarch64": 93}.get(platform.machine())
    if exit_nr is None:
        pytest.skip(f"SYS_exit's number on {platform.machine()} is not in this test")
    result = mbpp_plus.score_solution(problems[1], ZOMBIE_LEADER_SURVIVOR.format(exit_nr=exit_nr))
    assert (result["passed"], result["base_status"], result["plus_status"]) == (True, "pass", "pass"), result


class ScriptedGenerator:
    def __init__(self, answers):
        self.answers = answers

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "<|user|>" + messages[-1]["content"]

    def generate(self, prompts, n, params):
        assert "similar_elements" in prompts[0] and "square_perimeter" in prompts[1]
        return [[a] for a in self.answers]


class OneAnswerGenerator(ScriptedGenerator):
    def generate(self, prompts, n, params):
        assert len(prompts) == 1 and "similar_elements" in prompts[0]
        return [[self.answers[0]]]


def test_a_single_problem_has_no_standard_error(tmp_path):
    # as the math, choice and toy benchmarks report it (it was 0.0 here: a spread of one value claimed as none)
    summary = evaluate_code("mbpp_plus", OneAnswerGenerator([RIGHT_SIMILAR]), FIXTURE, tmp_path,
                            {"model": "tiny", "limit": 1})
    assert summary["n_problems"] == 1 and summary["value"] == 1.0
    assert summary["stderr"] is None


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


class NeverCalledGenerator:
    def apply_chat_template(self, messages, add_generation_prompt=True):
        return messages[-1]["content"]

    def generate(self, prompts, n, params):
        raise AssertionError("generation must not start when a problem cannot be graded")


def test_a_problem_whose_reference_solution_fails_stops_the_evaluation_before_generation(tmp_path, monkeypatch):
    monkeypatch.setattr(mbpp_plus, "_ground_truth", {})
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    # Mbpp/17's canonical solution returns an object that is not plain data: no expected outputs to compare with
    rows[1]["canonical_solution"] = "\ndef square_perimeter(a):\n  return object()\n"
    data = tmp_path / "mbpp_plus.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RuntimeError, match=r"mbpp_plus: the reference solution of 1 of 2 problems .*Mbpp/17: "
                                           r"canonical solution"):
        evaluate_code("mbpp_plus", NeverCalledGenerator(), data, tmp_path / "out", {"model": "tiny"})
    assert not (tmp_path / "out").exists()  # nothing written


def test_scoring_against_a_failed_reference_raises_rather_than_failing_the_sample(problems, monkeypatch):
    monkeypatch.setattr(mbpp_plus, "_ground_truth", {})
    broken = {**problems[1], "canonical_solution": "\ndef square_perimeter(a):\n  return object()\n"}
    with pytest.raises(mbpp_plus.GroundTruthError, match="not plain data"):
        mbpp_plus.score_solution(broken, "def square_perimeter(a):\n    return 4 * a\n")


def test_sandboxes_run_on_the_cpus_this_job_was_given_not_the_whole_node(tmp_path, monkeypatch):
    # SLURM (cgroups, task affinity) gives a job a few of a node's CPUs; os.cpu_count() is the node's. A sandbox per
    # node CPU on 2 allocated ones runs each reference and candidate many times slower against its wall-clock limits.
    import mgrpo.evaluation.code as code

    pools = []

    class RecordingPool(code.ThreadPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(code, "ThreadPoolExecutor", RecordingPool)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5}, raising=False)
    monkeypatch.setattr(mbpp_plus, "_ground_truth", {})
    evaluate_code("mbpp_plus", ScriptedGenerator([RIGHT_SIMILAR, WRONG_PERIMETER]), FIXTURE, tmp_path, {"model": "m"})
    assert pools == [2, 2]  # references, then candidates
    pools.clear()
    evaluate_code("mbpp_plus", ScriptedGenerator([RIGHT_SIMILAR, WRONG_PERIMETER]), FIXTURE, tmp_path,
                  {"model": "m", "workers": 3})
    assert pools == [3, 3]  # as asked


SWEEP_SCRIPT = r'''
import os, signal, sys, time
from mgrpo.evaluation.code import _supervisor as s
s.become_subreaper()
def idle(receive, reply):
    while receive() is not None:
        pass
kept = s.fork_worker(idle)  # stands for the plus worker, not used yet
used = s.fork_worker(idle)  # stands for the base worker
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # the "candidate": a double-forked daemon (orphaned: re-parented to the sweeper, a subreaper)
    if os.fork() == 0:
        os.setsid()
        os.write(w, str(os.getpid()).encode())
        while True:
            time.sleep(0.05)
    os._exit(0)
daemon = int(os.read(r, 64))
used.kill()
s.sweep(keep=[kept])
alive = lambda p: os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
print("daemon", alive(daemon), "kept", alive(kept.pid), "ppid", alive(os.getppid()))
s.sweep()
print("after", alive(kept.pid))
'''


def test_the_sweep_kills_an_orphaned_daemon_but_never_the_unused_worker_or_anything_outside_its_tree():
    import subprocess

    done = subprocess.run([sys.executable, "-c", SWEEP_SCRIPT], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.stdout.split() == ["daemon", "False", "kept", "True", "ppid", "True", "after", "False"], done


UNSTOPPABLE_SCRIPT = """
import os, subprocess, sys
from mgrpo.evaluation.code import _supervisor
survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
real_kill, missed = os.kill, []
os.kill = lambda pid, sig: missed.append(pid)  # the signal misses: the survivor outlives every round
_supervisor.SWEEP_ROUNDS = 3
try:
    _supervisor.sweep()
    print("returned")
except _supervisor.SweepError as error:
    print("SweepError:", error)
finally:
    os.kill = real_kill
    survivor.kill()
    survivor.wait()
print("missed the survivor", missed.count(survivor.pid), "times")
"""


def test_a_descendant_the_sweep_cannot_stop_is_an_error_after_its_rounds():
    # Stands in for a process that a fork race refills faster than the sweep kills it; in a process of its own, so
    # that the sweep sees no other descendant than the survivor. The driver then writes no report: never a pass.
    import subprocess

    done = subprocess.run([sys.executable, "-c", UNSTOPPABLE_SCRIPT], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.stdout.splitlines() == ["SweepError: 1 process(es) of the candidate survived 3 sweeps",
                                        "missed the survivor 3 times"], done


def test_the_supervisor_overhead_benchmark_answers_help_without_running():
    # `python bench/supervisor_overhead.py --help` used to ignore its arguments and run the whole benchmark
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "supervisor_overhead.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: supervisor_overhead.py") and "| input |" not in done.stdout
