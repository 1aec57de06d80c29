"""Generation kept chunk by chunk: a preempted evaluation generates only what it had not, and draws what one
uninterrupted call would have drawn."""
from __future__ import annotations

import json

import pytest

from mgrpo.evaluation import evaluate
from mgrpo.evaluation import resumable
from mgrpo.evaluation.generation import SamplingParams
from mgrpo.evaluation.resumable import ChunkedGenerator
from test_eval_fixtures import save_tiny_toy_model


class SeededLikeVllm:
    """VLLMGenerator's seeding: prompt i of a call is drawn with seed + n * i, whatever else is in the call."""

    backend = "fake-vllm"

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def generate(self, prompts, n, params):
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("preempted")  # SIGTERM from SLURM, as far as this job is concerned
        self.calls.append(list(prompts))
        return [[f"{p}|seed{params.seed + n * i}|sample{j}" for j in range(n)] for i, p in enumerate(prompts)]


PROMPTS = [f"q{i}" for i in range(7)]
PARAMS = SamplingParams(temperature=1.0, seed=100)
# By hand: prompt i of one uninterrupted call (n = 2), sample j, is drawn with seed 100 + 2 * i.
EXPECTED = [[f"q{i}|seed{100 + 2 * i}|sample{j}" for j in range(2)] for i in range(7)]


def test_chunks_draw_what_one_call_draws():
    inner = SeededLikeVllm()
    chunked = ChunkedGenerator(inner, chunk_sequences=6)  # 3 prompts x 2 samples per chunk
    assert chunked.generate(PROMPTS, 2, PARAMS) == EXPECTED
    assert inner.calls == [PROMPTS[0:3], PROMPTS[3:6], PROMPTS[6:7]]
    assert chunked.backend == "fake-vllm"  # the wrapped generator's attributes


def test_a_preempted_generation_resumes_from_its_stored_chunks(tmp_path):
    store = tmp_path / "cache" / "bench.responses.partial.jsonl"
    first = SeededLikeVllm(fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        ChunkedGenerator(first, store, {"benchmark": "b"}, chunk_sequences=6).generate(PROMPTS, 2, PARAMS)
    assert len(store.read_text().splitlines()) == 2  # two chunks were on disk when the job was stopped
    with open(store, "a") as handle:
        handle.write('{"call": "cut sho')  # and a third was being written

    again = SeededLikeVllm()
    assert ChunkedGenerator(again, store, {"benchmark": "b"}, chunk_sequences=6).generate(PROMPTS, 2, PARAMS) \
        == EXPECTED
    assert again.calls == [PROMPTS[6:7]]  # only the chunk that was not kept


@pytest.mark.parametrize("change", [
    dict(key={"benchmark": "b", "model_files": "another checkpoint"}),
    dict(params=SamplingParams(temperature=0.6, seed=100)),
    dict(n=3),
    dict(prompts=PROMPTS[:6] + ["q6 edited"]),
])
def test_stored_chunks_of_another_call_are_not_reused(tmp_path, change):
    store = tmp_path / "store.jsonl"
    ChunkedGenerator(SeededLikeVllm(), store, {"benchmark": "b"}, chunk_sequences=6).generate(PROMPTS, 2, PARAMS)
    inner = SeededLikeVllm()
    prompts, n, params = change.get("prompts", PROMPTS), change.get("n", 2), change.get("params", PARAMS)
    out = ChunkedGenerator(inner, store, change.get("key", {"benchmark": "b"}), chunk_sequences=6).generate(
        prompts, n, params)
    assert sum(len(c) for c in inner.calls) == 7  # everything generated afresh
    assert out[6][0].startswith(prompts[6] + "|")


def test_a_preempted_evaluation_job_generates_only_the_rest_and_cleans_up(tmp_path, monkeypatch):
    from mgrpo.toy import task
    data = tmp_path / "data"
    task.write_splits(data, seed=0, config=task.TaskConfig(pretrain_size=4, train_size=4, test_size=5))
    model = save_tiny_toy_model(tmp_path / "model")
    monkeypatch.setattr(resumable, "CHUNK_SEQUENCES", 4)  # 2 prompts x 2 samples per chunk: chunks 0-1, 2-3, 4
    cache = tmp_path / "cache"

    def run(generator, out):
        return evaluate(str(model), ["toy"], tmp_path / out, data_dir=data, samples=2, generator=generator,
                        cache_dir=cache)["toy"]

    with pytest.raises(KeyboardInterrupt):
        run(SeededLikeVllm(fail_on_call=1), "a")
    assert not (tmp_path / "a" / "toy.json").exists()
    resumed = SeededLikeVllm()
    result = run(resumed, "b")
    assert [len(c) for c in resumed.calls] == [2, 1]  # the first chunk came from the store
    assert not list(cache.glob("*.partial.jsonl"))  # the result is cached: the partial store is gone

    uninterrupted = SeededLikeVllm()
    assert run(uninterrupted, "c") == result and uninterrupted.calls == []  # cached whole
    records = [json.loads(line) for line in (tmp_path / "b" / "toy.samples.jsonl").read_text().splitlines()]
    # prompt i of the benchmark drawn with seed 0 + 2 * i, as one call would: the resume changed nothing
    assert [r["responses"][1].split("|")[1:] for r in records] == [[f"seed{2 * i}", "sample1"] for i in range(5)]


def test_a_second_preemption_after_a_torn_row_still_resumes(tmp_path):
    # a job killed while appending leaves a line without its newline; the requeued job appends after it, is
    # preempted again, and the third start must still read the chunks kept (not fail on the glued line)
    store = tmp_path / "store.jsonl"
    key = {"benchmark": "b"}
    with pytest.raises(KeyboardInterrupt):
        ChunkedGenerator(SeededLikeVllm(fail_on_call=1), store, key, chunk_sequences=4).generate(PROMPTS, 2, PARAMS)
    with open(store, "a") as handle:
        handle.write('{"call": "cut sho')  # the second chunk was being written when the job was killed
    with pytest.raises(KeyboardInterrupt):  # requeued: generates chunk 2 (prompts 2-3), preempted on chunk 3
        ChunkedGenerator(SeededLikeVllm(fail_on_call=1), store, key, chunk_sequences=4).generate(PROMPTS, 2, PARAMS)
    third = SeededLikeVllm()
    assert ChunkedGenerator(third, store, key, chunk_sequences=4).generate(PROMPTS, 2, PARAMS) == EXPECTED
    assert third.calls == [PROMPTS[4:6], PROMPTS[6:7]]  # chunks 0-1 and 2-3 were kept


def _store_of_one_call(tmp_path):
    store = tmp_path / "store.jsonl"  # chunks 0 (prompts 0-1) and 2 (prompts 2-3) kept
    with pytest.raises(KeyboardInterrupt):
        ChunkedGenerator(SeededLikeVllm(fail_on_call=2), store, {"benchmark": "b"}, chunk_sequences=4).generate(
            PROMPTS, 2, PARAMS)
    return store, [json.loads(line) for line in store.read_text().splitlines()]


@pytest.mark.parametrize("damage", [
    lambda row: row.pop("start"),
    lambda row: row.pop("responses"),
    lambda row: row.update(start="0"),
    lambda row: row.update(start=1),  # not where a chunk starts
    lambda row: row.update(responses=row["responses"][:1]),  # one prompt short
    lambda row: row.update(responses=[r[:1] for r in row["responses"]]),  # one sample short per prompt
    lambda row: row.update(responses=[[1, 2], [3, 4]]),  # not text
    lambda row: row.update(responses="ab"),
])
def test_a_malformed_stored_row_is_generated_again_and_named(tmp_path, capsys, damage):
    store, rows = _store_of_one_call(tmp_path)
    damage(rows[0])
    store.write_text("".join(json.dumps(row) + "\n" for row in rows))
    again = SeededLikeVllm()
    assert ChunkedGenerator(again, store, {"benchmark": "b"}, chunk_sequences=4).generate(PROMPTS, 2, PARAMS) \
        == EXPECTED
    assert again.calls == [PROMPTS[0:2], PROMPTS[4:6], PROMPTS[6:7]]  # the damaged chunk 0 generated again
    assert f"{store}:1" in capsys.readouterr().err


def test_an_unreadable_line_of_the_store_is_skipped_and_named(tmp_path, capsys):
    store, rows = _store_of_one_call(tmp_path)
    lines = store.read_text().splitlines()
    store.write_text("\n".join(["[1, 2]", "{not json", lines[0], "x", lines[1]]) + "\n")
    again = SeededLikeVllm()
    assert ChunkedGenerator(again, store, {"benchmark": "b"}, chunk_sequences=4).generate(PROMPTS, 2, PARAMS) \
        == EXPECTED
    assert again.calls == [PROMPTS[4:6], PROMPTS[6:7]]
    err = capsys.readouterr().err
    assert f"{store}:1" in err and f"{store}:2" in err and f"{store}:4" in err


class _FakeVllmModule:
    """vllm's SamplingParams, and an LLM that expands a request of n samples as vLLM's V1 engine does
    (vllm/v1/engine/parallel_sampling.py: child j of a request with seed s is drawn with seed s + j)."""

    class SamplingParams:
        def __init__(self, n, temperature, top_p, max_tokens, seed):
            self.n, self.seed = n, seed

    class LLM:
        def generate(self, prompts, params, use_tqdm=False):
            from types import SimpleNamespace

            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"{prompt}|draw{p.seed + j}") for j in range(p.n)])
                    for prompt, p in zip(prompts, params, strict=True)]


class VllmSeeding:
    """generation._vllm_generate over the fake engine, prompt i of a call at index i (as VLLMGenerator with one
    engine, and each data-parallel engine with its prompts' global positions)."""

    backend = "fake-vllm"

    def generate(self, prompts, n, params):
        from mgrpo.evaluation.generation import _vllm_generate

        return _vllm_generate(_FakeVllmModule.LLM(), list(prompts), list(range(len(prompts))), n, params)


def test_no_two_samples_of_a_vllm_call_share_a_seed(monkeypatch):
    # with seed + i per prompt and vLLM's seed + j per sample, sample 1 of prompt 0 and sample 0 of prompt 1 were
    # both drawn with seed + 1: the same random stream, samples of neighbouring problems correlated
    monkeypatch.setitem(__import__("sys").modules, "vllm", _FakeVllmModule)
    draws = [text.split("|")[1] for sample in VllmSeeding().generate(PROMPTS, 3, PARAMS) for text in sample]
    assert len(set(draws)) == len(PROMPTS) * 3
    # and chunking (resumed or not) still draws what one call draws
    chunked = ChunkedGenerator(VllmSeeding(), chunk_sequences=6)  # 2 prompts x 3 samples per chunk
    assert chunked.generate(PROMPTS, 3, PARAMS) == VllmSeeding().generate(PROMPTS, 3, PARAMS)


def test_a_store_left_by_a_kill_after_the_result_was_cached_goes_at_the_next_run(tmp_path, monkeypatch):
    from mgrpo.toy import task
    data = tmp_path / "data"
    task.write_splits(data, seed=0, config=task.TaskConfig(pretrain_size=4, train_size=4, test_size=5))
    model = save_tiny_toy_model(tmp_path / "model")
    monkeypatch.setattr(resumable, "CHUNK_SEQUENCES", 4)
    cache = tmp_path / "cache"
    store = cache / "toy.responses.partial.jsonl"
    real_unlink = type(store).unlink

    def killed_at_the_store(path, missing_ok=False):
        if path == store:
            raise KeyboardInterrupt("killed between the cached key and the store's removal")
        return real_unlink(path, missing_ok=missing_ok)

    def run(out):
        return evaluate(str(model), ["toy"], tmp_path / out, data_dir=data, samples=2, generator=SeededLikeVllm(),
                        cache_dir=cache)["toy"]

    with monkeypatch.context() as patch:
        patch.setattr(type(store), "unlink", killed_at_the_store)
        with pytest.raises(KeyboardInterrupt):
            run("a")
    assert (cache / "toy.key.json").is_file() and store.is_file()
    run("b")  # a cache hit: nothing generated, and nothing of this benchmark's generation is kept any longer
    assert not store.exists()


def test_the_wrapper_can_be_copied():
    # __getattr__ forwards to self.generator: before __init__ (copy, pickle) that lookup recursed without end
    import copy

    chunked = ChunkedGenerator(SeededLikeVllm(), chunk_sequences=6)
    assert copy.copy(chunked).generate(PROMPTS, 2, PARAMS) == EXPECTED
    assert copy.deepcopy(chunked).backend == "fake-vllm"


def test_chunks_generated_under_other_settings_do_not_pile_up_in_the_store(tmp_path):
    # a job preempted, requeued after the checkpoint or the harness changed, preempted again, ...: the store keeps
    # only what the current settings can use, not every earlier setting's responses
    store = tmp_path / "store.jsonl"
    for version in range(3):
        with pytest.raises(KeyboardInterrupt):
            ChunkedGenerator(SeededLikeVllm(fail_on_call=2), store, {"harness": version}, chunk_sequences=4).generate(
                PROMPTS, 2, PARAMS)
    assert len(store.read_text().splitlines()) == 2  # the last setting's two chunks
    again = SeededLikeVllm()
    assert ChunkedGenerator(again, store, {"harness": 2}, chunk_sequences=4).generate(PROMPTS, 2, PARAMS) == EXPECTED
    assert again.calls == [PROMPTS[4:6], PROMPTS[6:7]]
