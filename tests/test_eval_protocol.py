"""The protocol through lm-eval: a scripted model whose k samples are right on a known pattern must give exactly
the hand-computed avg@k and pass@k on every math and multiple-choice task; sampling settings reach the model."""
from __future__ import annotations

import json
import re
import statistics

import pytest

from mgrpo.evaluation.generation import SamplingParams
from mgrpo.evaluation.runner import evaluate
from test_eval_fixtures import (
    GPQA_ROWS,
    MATH500_ROWS,
    SHARED_DATA,
    ScriptedGenerator,
    write_fixture_data,
)

pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fixture_data(tmp_path_factory.mktemp("eval_data"))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# Which of the k samples of problem i are correct: NOT a prefix, so scoring only the first sample (lm-eval's
# built-in behaviour) or only the first k' would give a different number.
PATTERN = {0: {1, 2, 3, 4, 5, 6, 7}, 1: {0}, 2: set(), 3: {2, 5}, 4: {0, 1, 2, 3, 4, 5, 6, 7}}
# avg@8 = (7 + 1 + 0 + 2 + 8) / 40 = 18/40; pass@8 = 4/5; per-problem means 7/8, 1/8, 0, 2/8, 1
AVG8, PASS8 = 18 / 40, 4 / 5
PER_PROBLEM = [7 / 8, 1 / 8, 0.0, 2 / 8, 1.0]


def aime24_respond(text, j):
    i = int(re.search(r"Compute (\d+) times 7", text).group(1))
    return f"... so \\boxed{{{7 * i if j in PATTERN[i - 1] else 7 * i + 1}}}"


def aime25_respond(text, j):
    i = int(re.search(r"Compute (\d+) plus 100", text).group(1))
    return f"The final answer is {100 + i if j in PATTERN[i] else 99}"   # no box: answer-phrase fallback


@pytest.mark.parametrize("bench_name,respond", [("aime24", aime24_respond), ("aime25", aime25_respond)])
def test_aime_avg_at_8_and_pass_at_8_are_exact(bench_name, respond, data_dir, tmp_path):
    generator = ScriptedGenerator(respond)
    result = evaluate("scripted", [bench_name], tmp_path, data_dir=data_dir, generator=generator)[bench_name]
    assert result["metric"] == "avg@8" and result["samples_per_problem"] == 8   # the paper's protocol default
    assert result["value"] == pytest.approx(AVG8)
    assert result["metrics"] == {"avg@8": pytest.approx(AVG8), "pass@8": pytest.approx(PASS8)}
    assert result["stderr"] == pytest.approx(statistics.stdev(PER_PROBLEM) / len(PER_PROBLEM) ** 0.5)
    assert result["n_problems"] == 5
    # One generate call per prompt group with n=8 (not 8 calls of n=1), at the protocol's sampling settings.
    assert [n for _, n, _ in generator.calls] == [8]
    assert generator.calls[0][2] == SamplingParams(temperature=0.8, top_p=1.0, max_tokens=3072, seed=0)
    on_disk = json.loads((tmp_path / f"{bench_name}.json").read_text())
    assert on_disk["value"] == pytest.approx(AVG8)
    records = read_jsonl(tmp_path / f"{bench_name}.samples.jsonl")
    assert [sum(r["correct"]) for r in records] == [len(PATTERN[i]) for i in range(5)]
    assert all(len(r["responses"]) == len(r["extracted"]) == 8 for r in records)


def test_math500_single_sample_uses_math_verify_equivalence(data_dir, tmp_path):
    # Equivalent forms for problems 0, 1, 3; a wrong interval (open instead of closed) for problem 2.
    answers = {MATH500_ROWS[0]["problem"]: "\\boxed{0.75}", MATH500_ROWS[1]["problem"]: "\\boxed{x = 5}",
               MATH500_ROWS[2]["problem"]: "\\boxed{(-\\infty, 3)}", MATH500_ROWS[3]["problem"]: "\\boxed{\\{2,1\\}}"}
    result = evaluate("scripted", ["math500"], tmp_path, data_dir=data_dir,
                      generator=ScriptedGenerator(lambda text, j: answers[text]))["math500"]
    assert result["metric"] == "avg@1" and result["samples_per_problem"] == 1
    assert result["value"] == pytest.approx(3 / 4)
    assert result["metrics"]["pass@1"] == pytest.approx(3 / 4)
    records = read_jsonl(tmp_path / "math500.samples.jsonl")
    assert [r["correct"] for r in records] == [[True], [True], [False], [True]]
    assert records[0]["extracted"] == ["0.75"] and records[0]["gold"] == "\\frac{3}{4}"
    # The prompt went through the chat template with the training system prompt.
    assert records[0]["prompt"].startswith("<system>Let's think step by step and output the final answer "
                                           "within \\boxed{}.</system><user>What is $1/2 + 1/4$?</user>")


def choice_respond(correct_text_of):
    """Pick the option whose text is the correct answer on pattern samples, another option otherwise."""
    def respond(text, j):
        question = text.split("\n\n")[0]
        options = dict(re.findall(r"^([A-J])\) (.*)$", text, re.MULTILINE))
        right = next(letter for letter, option in options.items() if option == correct_text_of[question])
        wrong = next(letter for letter in options if letter != right)
        i = list(correct_text_of).index(question)
        return f"\\boxed{{{right if j in PATTERN.get(i, set()) else wrong}}}"
    return respond


@pytest.mark.parametrize("bench_name", ["gpqa_diamond", "gpqa"])
def test_gpqa_letters_follow_the_shuffle(bench_name, data_dir, tmp_path):
    correct = {row["Question"]: row["Correct Answer"] for row in GPQA_ROWS}
    samples = 8
    result = evaluate("scripted", [bench_name], tmp_path, data_dir=data_dir, samples=samples,
                      generator=ScriptedGenerator(choice_respond(correct)))[bench_name]
    # 6 problems: the PATTERN counts for 0..4 and none right for problem 5.
    counts = [len(PATTERN[i]) for i in range(5)] + [0]
    assert result["value"] == pytest.approx(sum(counts) / (6 * samples))
    assert result["metrics"][f"pass@{samples}"] == pytest.approx(4 / 6)
    records = read_jsonl(tmp_path / f"{bench_name}.samples.jsonl")
    # The correct answer does not always sit at A: the shuffle moves it.
    assert len({r["gold"] for r in records}) > 1


def test_gpqa_diamond_defaults_to_8_samples_and_gpqa_main_to_1(data_dir, tmp_path):
    correct = {row["Question"]: row["Correct Answer"] for row in GPQA_ROWS}
    results = evaluate("scripted", ["gpqa_diamond", "gpqa"], tmp_path, data_dir=data_dir,
                       generator=ScriptedGenerator(choice_respond(correct)))
    assert results["gpqa_diamond"]["samples_per_problem"] == 8
    assert results["gpqa"]["samples_per_problem"] == 1
    # With k=1 only sample 0 counts: problems whose pattern holds 0 are 1 and 4.
    assert results["gpqa"]["value"] == pytest.approx(2 / 6)


def test_mmlu_pro_ten_options(data_dir, tmp_path):
    # golds G, J, C, F (fixture); right with a phrase and with a box, wrong inside and beyond A-D
    responses = {0: "The answer is (G)", 1: "\\boxed{J}", 2: "\\boxed{A}", 3: "\\boxed{H}"}

    def respond(text, j):
        return responses[int(re.search(r"question (\d+)\?", text).group(1))]

    result = evaluate("scripted", ["mmlu_pro"], tmp_path, data_dir=data_dir,
                      generator=ScriptedGenerator(respond))["mmlu_pro"]
    records = read_jsonl(tmp_path / "mmlu_pro.samples.jsonl")
    assert [r["gold"] for r in records] == ["G", "J", "C", "F"]
    assert [(r["extracted"], r["correct"]) for r in records] == \
        [(["G"], [True]), (["J"], [True]), (["A"], [False]), (["H"], [False])]
    assert result["value"] == pytest.approx(2 / 4)
    assert "J) opt9" in records[0]["prompt"]


def test_settings_reach_the_generator_and_the_result(data_dir, tmp_path):
    generator = ScriptedGenerator(lambda text, j: "\\boxed{0}")
    result = evaluate("scripted", ["aime25"], tmp_path, data_dir=data_dir, generator=generator,
                      temperature=0.6, top_p=0.95, max_tokens=128, samples=3, seed=7, limit=2)["aime25"]
    prompts, n, params = generator.calls[0]
    assert (len(prompts), n) == (2, 3)
    assert params == SamplingParams(temperature=0.6, top_p=0.95, max_tokens=128, seed=7)
    assert result["generation"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 128,
                                    "backend": "scripted", "seed": 7}
    assert result["n_problems"] == 2 and result["metric"] == "avg@3"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} not present")
@pytest.mark.parametrize("bench_name", ["math500", "aime24", "aime25"])
def test_an_oracle_scores_1_on_the_real_math_data(bench_name, tmp_path):
    """Every real gold answer, boxed, must grade equal to itself (the parse/verify path works on real answers),
    and the next problem's answer must not when the two differ numerically."""
    from mgrpo.evaluation.datasets import load_docs

    docs = load_docs(bench_name, SHARED_DATA / f"{bench_name}.jsonl")
    gold = {d["problem"]: d["answer"] for d in docs}
    result = evaluate("oracle", [bench_name], tmp_path, data_dir=SHARED_DATA, samples=1,
                      generator=ScriptedGenerator(lambda text, j: f"\\boxed{{{gold[text]}}}"))[bench_name]
    assert result["value"] == 1.0 and result["n_problems"] == len(docs)
    if bench_name != "math500":  # integer answers: a different integer is wrong
        shifted = {d["problem"]: docs[(i + 1) % len(docs)]["answer"] for i, d in enumerate(docs)}
        expected = sum(shifted[p] == gold[p] for p in gold) / len(gold)
        result = evaluate("wrong", [bench_name], tmp_path, data_dir=SHARED_DATA, samples=1,
                          generator=ScriptedGenerator(lambda text, j: f"\\boxed{{{shifted[text]}}}"))[bench_name]
        assert result["value"] == pytest.approx(expected)


def test_a_worker_timeout_that_lm_eval_did_not_hit_is_graded_again_not_fatal(data_dir, tmp_path, monkeypatch):
    # math-verify's 5 s timeout hit in a re-grading worker but not in lm-eval's own grading: the document is
    # graded again the way lm-eval graded it, instead of aborting an evaluation whose generation is done
    from mgrpo.evaluation import lm_eval_runner

    real = lm_eval_runner.grade_math_batch

    def one_timeout(responses, golds, **kwargs):
        verdicts = real(responses, golds, **kwargs)
        assert verdicts[1][1]  # problem 0, sample 1 is right (PATTERN) ...
        return verdicts[:1] + [(None, False)] + verdicts[2:]  # ... but "timed out" in the worker

    monkeypatch.setattr(lm_eval_runner, "grade_math_batch", one_timeout)
    generator = ScriptedGenerator(aime24_respond)
    result = evaluate("scripted", ["aime24"], tmp_path, data_dir=data_dir, generator=generator)["aime24"]
    assert result["value"] == pytest.approx(AVG8)
    records = read_jsonl(tmp_path / "aime24.samples.jsonl")
    assert [sum(r["correct"]) for r in records] == [len(PATTERN[i]) for i in range(5)]
    # a disagreement that survives the second grading still stops the evaluation (the log must say what the score says)
    monkeypatch.setattr(lm_eval_runner, "math_verdicts", lambda doc, responses: [(None, False)] * len(responses))
    with pytest.raises(RuntimeError, match="but the samples give"):
        evaluate("scripted", ["aime24"], tmp_path / "again", data_dir=data_dir, generator=ScriptedGenerator(aime24_respond))
