"""The benchmark registry: how each benchmark is run, graded and sampled (the paper's protocol)."""
from __future__ import annotations

from dataclasses import dataclass

# Same system prompt as training (mgrpo.verl_backend.data.SYSTEM_PROMPT, the released code's template):
# the model is evaluated on the instruction it was trained to follow.
SYSTEM_PROMPT = "Let's think step by step and output the final answer within \\boxed{}."

# The paper samples at temperature 0.8; AIME24, AIME25 and GPQA-Diamond 8 times (avg@8), the rest once.
EVAL_TEMPERATURE = 0.8
DEFAULT_MAX_TOKENS = 3072


@dataclass(frozen=True)
class Benchmark:
    name: str
    runner: str              # "toy" (own loop, raw prompt) | "lm_eval" (our task YAML) | "code" (mgrpo.evaluation.code)
    default_samples: int     # k of avg@k when --samples is not given
    max_tokens: int          # default generation budget
    description: str


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("toy", "toy", 1, 16, "toy chain-arithmetic test split (CPU trainer checkpoints), raw prompt"),
    Benchmark("math500", "lm_eval", 1, DEFAULT_MAX_TOKENS, "MATH-500, math-verify equivalence"),
    Benchmark("aime24", "lm_eval", 8, DEFAULT_MAX_TOKENS, "AIME 2024 I+II (30), math-verify, avg@8"),
    Benchmark("aime25", "lm_eval", 8, DEFAULT_MAX_TOKENS, "AIME 2025 I+II (30), math-verify, avg@8"),
    Benchmark("gpqa_diamond", "lm_eval", 8, DEFAULT_MAX_TOKENS, "GPQA Diamond (198), boxed letter, avg@8"),
    Benchmark("gpqa", "lm_eval", 1, DEFAULT_MAX_TOKENS, "GPQA main (448), boxed letter"),
    Benchmark("mmlu_pro", "lm_eval", 1, DEFAULT_MAX_TOKENS, "MMLU-Pro (10 options), boxed letter"),
    Benchmark("mbpp_plus", "code", 1, DEFAULT_MAX_TOKENS, "MBPP+ (evalplus), pass@1 in the sandbox"),
    Benchmark("livecodebench", "code", 1, DEFAULT_MAX_TOKENS, "LiveCodeBench code generation, pass@1 in the sandbox"),
)}


class UnknownBenchmarkError(ValueError):
    pass


def known_benchmarks() -> list[str]:
    return list(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def parse_benchmarks(names: str | list[str]) -> list[Benchmark]:
    """``"math500,aime24"`` or a list -> benchmarks, in order, without duplicates; unknown names fail first."""
    if isinstance(names, str):
        names = names.split(",")
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise ValueError(f"no benchmark given; known: {', '.join(BENCHMARKS)}")
    unknown = [n for n in wanted if n not in BENCHMARKS]
    if unknown:
        raise UnknownBenchmarkError(f"unknown benchmark(s) {', '.join(map(repr, unknown))}; "
                                    f"known: {', '.join(BENCHMARKS)}")
    return [BENCHMARKS[n] for n in dict.fromkeys(wanted)]
