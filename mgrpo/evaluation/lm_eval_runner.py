"""Run one of our lm-eval task YAMLs with our own generator wrapped as an lm-eval ``LM``.

Why a wrapper (``MgrpoLM``, registered as lm-eval model ``mgrpo``) instead of lm-eval's ``hf``/``vllm`` models:
sampling settings then take one path for both backends and for the non-lm-eval benchmarks (toy, code). lm-eval's
own models read sampling from each task's ``generation_kwargs`` (built-in tasks: ``do_sample: false``, so
``--gen_kwargs temperature=0.8`` alone stays greedy) and normalise them differently per backend. Here lm-eval does
what it is good at (documents -> chat prompts, repeats, filters, per-document metrics, aggregation, stderr,
per-sample logging) and :class:`~mgrpo.evaluation.generation.Generator` does all the sampling.
"""
from __future__ import annotations

from collections import defaultdict, deque
from pathlib import Path

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from mgrpo.evaluation.benchmarks import SYSTEM_PROMPT, TASK_DIR, get_benchmark
from mgrpo.evaluation.generation import Generator, SamplingParams, load_generator
from mgrpo.evaluation.lm_eval_scoring import choice_verdicts, math_verdicts
from mgrpo.evaluation.math_grading import grade_math_batch

FILTER = "all_samples"


def task_name(benchmark: str) -> str:
    return f"mgrpo_{benchmark}"


@register_model("mgrpo")
class MgrpoLM(LM):
    """Generation-only lm-eval model backed by a :class:`Generator`; ignores the task's sampling kwargs."""

    def __init__(self, generator: Generator, params: SamplingParams):
        super().__init__()
        self.generator = generator
        self.params = params

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """``lm_eval --model mgrpo --model_args pretrained=DIR,backend=hf,temperature=0.8,max_tokens=3072``."""
        from lm_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(arg_string)
        sampling = {k: args.pop(k) for k in ("temperature", "top_p", "max_tokens", "seed") if k in args}
        generator = load_generator(args.pop("pretrained"), backend=args.pop("backend", "hf"), **args)
        return cls(generator, SamplingParams(**sampling))

    def generate_until(self, requests) -> list[str]:
        # lm-eval passes the same Instance `repeats` times: draw its k samples in one call (n=k) so the
        # backend can share the prompt (vLLM's n) and the samples are one draw of k, not k draws of one.
        counts: dict[int, int] = {}
        unique = {}
        for request in requests:
            counts[id(request)] = counts.get(id(request), 0) + 1
            unique.setdefault(id(request), request)
        by_n = defaultdict(list)
        for key in unique:
            by_n[counts[key]].append(key)
        samples: dict[int, deque] = {}
        for n, keys in by_n.items():
            prompts = [unique[key].args[0] for key in keys]
            for key, responses in zip(keys, self.generator.generate(prompts, n, self.params), strict=True):
                samples[key] = deque(responses)
        return [samples[id(request)].popleft() for request in requests]

    def loglikelihood(self, requests):
        raise NotImplementedError("the mgrpo lm-eval model is generation-only (generate_until)")

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError("the mgrpo lm-eval model is generation-only (generate_until)")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        return self.generator.apply_chat_template(chat_history, add_generation_prompt=add_generation_prompt)

    @property
    def tokenizer_name(self) -> str:
        return str(self.generator.name).replace("/", "__")


def load_task(benchmark: str, data_file: Path, samples: int):
    """Our task for ``benchmark``, reading ``data_file`` (validated on load), with ``repeats = samples``."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False,
                          metadata={"data_file": str(data_file)})
    task = manager.load([task_name(benchmark)])["tasks"][task_name(benchmark)]
    task.set_config(key="repeats", value=samples)
    return manager, task


def run_lm_eval(benchmark: str, generator: Generator, data_file: Path, samples: int, params: SamplingParams,
                limit: int | None = None) -> tuple[dict, list[dict]]:
    """Evaluate one benchmark; returns (metrics, per-sample records).

    metrics: ``avg``, ``avg_stderr``, ``pass``, ``n_problems`` as aggregated by lm-eval.
    records: one per problem: id, prompt, gold, every response, extracted answers, verdicts.
    """
    from lm_eval import evaluator

    manager, task = load_task(benchmark, data_file, samples)
    name = task_name(benchmark)
    results = evaluator.simple_evaluate(
        model=MgrpoLM(generator, params), tasks=[task], task_manager=manager, limit=limit,
        log_samples=True, apply_chat_template=True, system_instruction=SYSTEM_PROMPT,
        random_seed=params.seed, numpy_random_seed=params.seed, torch_random_seed=params.seed,
        fewshot_random_seed=params.seed)
    scores = results["results"][name]
    stderr = scores.get(f"avg_at_k_stderr,{FILTER}")
    metrics = {"avg": scores[f"avg_at_k,{FILTER}"], "avg_stderr": stderr if isinstance(stderr, float) else None,
               "pass": scores[f"pass_at_k,{FILTER}"]}

    logged = results["samples"][name]
    for sample in logged:
        if len(sample["filtered_resps"][0]) != samples:
            raise RuntimeError(f"{benchmark}: problem {sample['doc']['id']} got "
                               f"{len(sample['filtered_resps'][0])} samples, expected {samples}")
    if get_benchmark(benchmark).grading == "choice":
        verdicts = [choice_verdicts(s["doc"], list(s["filtered_resps"][0])) for s in logged]
    else:  # math-verify is the slow part: grade all responses at once in worker processes
        flat = grade_math_batch([r for s in logged for r in s["filtered_resps"][0]],
                                [s["doc"]["answer"] for s in logged for _ in range(samples)])
        verdicts = [flat[i * samples:(i + 1) * samples] for i in range(len(logged))]
        # math-verify bounds each parse/compare with a 5 s timeout: an answer near it can time out in a worker
        # and not in lm-eval's main-process grading. Such documents are graded again as lm-eval graded them.
        for i, sample in enumerate(logged):
            if abs(sum(c for _, c in verdicts[i]) / samples - float(sample["avg_at_k"])) > 1e-9:
                verdicts[i] = math_verdicts(sample["doc"], list(sample["filtered_resps"][0]))
    records = [{"id": s["doc"]["id"], "prompt": s["arguments"][0][0], "gold": s["doc"]["answer"],
                "responses": list(s["filtered_resps"][0]), "extracted": [e for e, _ in v],
                "correct": [c for _, c in v]} for s, v in zip(logged, verdicts)]
    metrics["n_problems"] = len(records)
    # The log must say what the score says: recompute avg@k from the records.
    recomputed = sum(sum(r["correct"]) / samples for r in records) / max(len(records), 1)
    if abs(recomputed - metrics["avg"]) > 1e-9:
        raise RuntimeError(f"{benchmark}: lm-eval avg@{samples}={metrics['avg']} but the samples give {recomputed}")
    return metrics, records
