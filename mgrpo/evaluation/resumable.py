"""Generation that survives a preemption: responses are kept on disk chunk by chunk, so that a requeued evaluation
job generates only what is missing instead of a whole benchmark again (MMLU-Pro: 12,032 prompts).

:class:`ChunkedGenerator` has the Generator interface. Each ``generate`` call is split into chunks of prompts
(about ``chunk_sequences`` responses each). With a ``store`` (JSON Lines, in the evaluation's cache folder), each
chunk's responses are appended to it once generated, under the call's identity (the result's cache key, the
prompts, n and the sampling settings); a later call with the same identity reads the chunks stored and generates
the others. A chunk starting at prompt ``s`` is generated with seed ``seed + s``: vLLM seeds prompt ``i`` of a call
with ``seed + i``, so the chunks draw what one call would have drawn, resumed or not. Without a store the same
chunks are generated and nothing is kept, so a result never depends on whether a cache folder was given.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from mgrpo.evaluation.generation import Generator, SamplingParams
from mgrpo.jsonl import append_row, read_log

# Responses per chunk and vLLM engine: large enough that the engine's batch stays full, small enough that a
# preemption loses minutes, not the benchmark. Data-parallel engines are started for each call, so they get
# proportionally larger chunks.
CHUNK_SEQUENCES = 4096


class ChunkedGenerator:
    def __init__(self, generator: Generator, store: Path | None = None, key: dict | None = None,
                 chunk_sequences: int | None = None):
        self.generator = generator
        self.store = Path(store) if store is not None else None
        self.key = key or {}
        engines = int(getattr(generator, "data_parallel_size", 1) or 1)
        self.chunk_sequences = chunk_sequences or CHUNK_SEQUENCES * engines

    def __getattr__(self, name):  # backend, name, apply_chat_template, ...: the wrapped generator's
        return getattr(self.generator, name)

    def _call_id(self, prompts: list[str], n: int, params: SamplingParams) -> str:
        identity = {"key": self.key, "n": n, "sampling": params.to_dict(),
                    "prompts": hashlib.sha256(json.dumps(prompts).encode()).hexdigest()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[str]]:
        prompts = list(prompts)
        call = self._call_id(prompts, n, params)
        per_chunk = max(1, self.chunk_sequences // max(1, n))
        done: dict[int, list[list[str]]] = {}
        if self.store is not None:
            for row in read_log(self.store):
                if row.get("call") == call:
                    done[row["start"]] = row["responses"]
        responses: list[list[str]] = []
        for start in range(0, len(prompts), per_chunk):
            chunk = prompts[start:start + per_chunk]
            if start in done and len(done[start]) == len(chunk):
                responses.extend(done[start])
                continue
            generated = self.generator.generate(chunk, n, replace(params, seed=params.seed + start))
            if len(generated) != len(chunk) or any(len(r) != n for r in generated):
                raise RuntimeError(f"generator returned {[len(r) for r in generated]} responses for {len(chunk)} "
                                   f"prompts x {n} samples")
            generated = [list(r) for r in generated]
            if self.store is not None:
                self.store.parent.mkdir(parents=True, exist_ok=True)
                append_row(self.store, {"call": call, "start": start, "responses": generated})
            responses.extend(generated)
            if len(prompts) > per_chunk:
                print(f"mgrpo evaluate: generated {min(start + per_chunk, len(prompts))}/{len(prompts)} prompts"
                      f"{' (kept in ' + str(self.store) + ')' if self.store else ''}", file=sys.stderr, flush=True)
        return responses
