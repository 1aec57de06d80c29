"""GPU smoke test of the evaluation's vLLM path (not yet run on a GPU): one small model, a MATH-500-style file of
easy sums written here, through `mgrpo.evaluation.evaluate` as `mgrpo evaluate` calls it (lm-eval task, vLLM
generator, math-verify grading, the result cache and the chunked, resumable generation).

    python bench/gpu_eval_smoke.py --out gpu_eval_smoke.json [--model HF_DIR] [--backend vllm] [--prompts 24]
                                   [--samples 4] [--chunk-sequences 32]

Without --model it builds the GPU training smoke's model (bench/gpu_smoke.py: a small Llama warm-started to answer
``\\boxed{d}``). It records, in the JSON (rewritten after each phase):

* ``first``: the evaluation's wall time, the score, the engine's FlashInfer sampler setting (vLLM 0.24's sampler
  needs FlashInfer unless ``VLLM_USE_FLASHINFER_SAMPLER=0``, which the generator sets where FlashInfer is missing)
  and the number of chunks generated (``--chunk-sequences`` small: several chunks on one engine);
* ``cached``: the same call again: no generation, the same result (the cache key holds);
* ``resumed``: the generation alone again, with a store that keeps only the first chunk of a complete run, as a
  preempted job finds it: which chunks were generated again, and whether every response equals the complete run's
  (per-request seeds: a resumed evaluation draws the samples an uninterrupted one draws).

`ok` is true when all three hold. On a CPU (``--backend hf``) the same phases run through transformers; the test
suite runs it that way on a tiny model (tests/test_eval_smoke_script.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mgrpo.atomic import write_json  # noqa: E402


def write_sums(directory: Path, count: int) -> Path:
    """MATH-500's columns, content made up here: "What is a + b?" with the sum as the answer."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [{"problem": f"What is {a} + {b}?", "solution": f"$\\boxed{{{a + b}}}$", "answer": str(a + b),
             "subject": "Arithmetic", "level": 1, "unique_id": f"smoke/{a}_{b}.json"}
            for a, b in ((1 + i % 9, 1 + i // 9) for i in range(count))]
    (directory / "math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def smoke_model(root: Path) -> Path:
    """The GPU training smoke's model (bench/gpu_smoke.py), built in root."""
    spec = importlib.util.spec_from_file_location("gpu_smoke", REPO / "bench" / "gpu_smoke.py")
    gpu_smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_smoke)
    return gpu_smoke.build_tiny_model(root / "model", gpu_smoke.build_data(root / "train_data"))


class Counting:
    """The generator, counting the prompts of each call that reaches it."""

    def __init__(self, generator):
        self.generator, self.calls = generator, []

    def __getattr__(self, name):
        if name == "generator":
            raise AttributeError(name)
        return getattr(self.generator, name)

    def generate(self, prompts, n, params):
        self.calls.append(len(prompts))
        return self.generator.generate(prompts, n, params)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_eval_smoke.json")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "mgrpo_gpu_eval_smoke")
    parser.add_argument("--model", type=Path, default=None, help="an HF model dir (default: build the smoke model)")
    parser.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--chunk-sequences", type=int, default=32, help="responses per chunk (small: several)")
    args = parser.parse_args(argv)

    from mgrpo.evaluation import resumable, runner
    from mgrpo.evaluation.generation import SamplingParams, load_generator

    report: dict = {"backend": args.backend, "prompts": args.prompts, "samples": args.samples,
                    "chunk_sequences": args.chunk_sequences}
    args.root.mkdir(parents=True, exist_ok=True)
    data = write_sums(args.root / "data", args.prompts)
    model = args.model or smoke_model(args.root)
    resumable.CHUNK_SEQUENCES = args.chunk_sequences
    options = {"gpu_memory_utilization": 0.3, "max_model_len": 1024} if args.backend == "vllm" else {}
    generator = Counting(load_generator(model, backend=args.backend, **options))
    cache = args.root / "cache"

    def evaluate(out: str) -> tuple[dict, float]:
        started = time.perf_counter()
        result = runner.evaluate(str(model), ["math500"], args.root / out, backend=args.backend, data_dir=data,
                                 samples=args.samples, max_tokens=args.max_tokens, generator=generator,
                                 backend_options=options, cache_dir=cache)["math500"]
        return result, time.perf_counter() - started

    first, seconds = evaluate("first")
    report["first"] = {"seconds": seconds, "value": first["value"], "chunks": list(generator.calls),
                       "VLLM_USE_FLASHINFER_SAMPLER": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER"),
                       "flashinfer_installed": importlib.util.find_spec("flashinfer") is not None}
    write_json(args.out, report)

    generator.calls.clear()
    again, seconds = evaluate("again")
    report["cached"] = {"seconds": seconds, "generated_chunks": list(generator.calls), "same_result": again == first}
    write_json(args.out, report)

    # The generation alone, as a preempted job finds it: a complete run's store cut to its first chunk.
    prompts = [f"What is {i} + 1? Answer in \\boxed{{}}." for i in range(args.prompts)]
    params = SamplingParams(temperature=0.8, max_tokens=args.max_tokens, seed=0)
    store, key = args.root / "resume" / "responses.partial.jsonl", {"smoke": "resume"}
    generator.calls.clear()
    complete = resumable.ChunkedGenerator(generator, store, key).generate(prompts, args.samples, params)
    chunks = list(generator.calls)
    store.write_text(store.read_text().splitlines(keepends=True)[0])
    generator.calls.clear()
    resumed = resumable.ChunkedGenerator(generator, store, key).generate(prompts, args.samples, params)
    report["resumed"] = {"chunks_complete": chunks, "chunks_regenerated": list(generator.calls),
                         "same_responses": resumed == complete}
    report["ok"] = bool(len(chunks) > 1 and not report["cached"]["generated_chunks"] and report["cached"]["same_result"]
                        and generator.calls == chunks[1:] and resumed == complete)
    write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
