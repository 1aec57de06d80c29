"""Generation that survives a preemption: responses are kept on disk chunk by chunk, so that a requeued evaluation
job generates only what is missing instead of a whole benchmark again (MMLU-Pro: 12,032 prompts).

:class:`ChunkedGenerator` has the Generator interface. Each ``generate`` call is split into chunks of prompts
(about ``chunk_sequences`` responses each). With a ``store`` (JSON Lines, in the evaluation's cache folder), each
chunk's responses are appended to it once generated, under the call's identity (the result's cache key, the
prompts, n and the sampling settings); a later call with the same identity reads the chunks stored and generates
the others. A chunk starting at prompt ``s`` is generated with seed ``seed + n x s``: VLLMGenerator seeds prompt ``i``
of a call with ``seed + n x i`` (its samples ``j`` then with ``+ j``), so the chunks draw what one call would have
drawn, resumed or not. Without a store the same
chunks are generated and nothing is kept, so a result never depends on whether a cache folder was given.
The store is only a cache: a line that cannot be used (cut short by a kill, not a well-formed row of the call) is
named on stderr, dropped, and its chunk generated again; the store is rewritten without it before anything is
appended, so a row cut short never takes the next one with it. Rows written under another key (the checkpoint, data, settings or harness changed
between a preemption and the requeued start) are dropped from the store when it is read, so it holds one setting's
responses at most, however often the settings change before a result is cached.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from mgrpo.atomic import atomic_path
from mgrpo.evaluation.generation import Generator, SamplingParams
from mgrpo.jsonl import append_row

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
        self._key_id = hashlib.sha256(json.dumps(self.key, sort_keys=True, default=str).encode()).hexdigest()
        engines = int(getattr(generator, "data_parallel_size", 1) or 1)
        self.chunk_sequences = chunk_sequences or CHUNK_SEQUENCES * engines

    def __getattr__(self, name):  # backend, name, apply_chat_template, ...: the wrapped generator's
        if name == "generator" or name.startswith("__"):  # not set yet (copy, pickle), or a protocol's
            raise AttributeError(name)
        return getattr(self.generator, name)

    def _call_id(self, prompts: list[str], n: int, params: SamplingParams) -> str:
        identity = {"key": self.key, "n": n, "sampling": params.to_dict(),
                    "prompts": hashlib.sha256(json.dumps(prompts).encode()).hexdigest()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[str]]:
        prompts = list(prompts)
        call = self._call_id(prompts, n, params)
        per_chunk = max(1, self.chunk_sequences // max(1, n))
        done = self._stored_chunks(call, len(prompts), per_chunk, n) if self.store is not None else {}
        responses: list[list[str]] = []
        for start in range(0, len(prompts), per_chunk):
            chunk = prompts[start:start + per_chunk]
            if start in done:
                responses.extend(done[start])
                continue
            generated = self.generator.generate(chunk, n, replace(params, seed=params.seed + n * start))
            if len(generated) != len(chunk) or any(len(r) != n for r in generated):
                raise RuntimeError(f"generator returned {[len(r) for r in generated]} responses for {len(chunk)} "
                                   f"prompts x {n} samples")
            generated = [list(r) for r in generated]
            if self.store is not None:
                self.store.parent.mkdir(parents=True, exist_ok=True)
                append_row(self.store, {"call": call, "key": self._key_id, "start": start, "responses": generated})
            responses.extend(generated)
            if len(prompts) > per_chunk:
                print(f"mgrpo evaluate: generated {min(start + per_chunk, len(prompts))}/{len(prompts)} prompts"
                      f"{' (kept in ' + str(self.store) + ')' if self.store else ''}", file=sys.stderr, flush=True)
        return responses

    def _stored_chunks(self, call: str, n_prompts: int, per_chunk: int, n: int) -> dict[int, list[list[str]]]:
        """The chunks of this call kept in the store, by start. The store is a cache: a line that cannot be used (cut
        short by a kill, not a well-formed row of this call) is named and its chunk generated again, rows of another
        key are dropped, and the store is then rewritten with the rows kept, so that the next row is appended to a
        clean file. It never stops the evaluation."""
        done: dict[int, list[list[str]]] = {}
        kept: list[bytes] = []  # well-formed rows of this key (any call: lm-eval makes one per n)
        dropped = stale = 0
        if not self.store.is_file():
            return done
        with open(self.store, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
                    row, why = None, f"not a JSON row ({error})"
                else:
                    why = None if isinstance(row, dict) and "call" in row else "not a row of responses"
                if why is None and row.get("key") != self._key_id:
                    stale += 1  # generated under other settings (a checkpoint, the harness...): never used again
                    continue
                if why is None and row["call"] == call:
                    why = _malformed(row, n_prompts, per_chunk, n)
                if why is not None:
                    _skip(self.store, number, why)
                    dropped += 1
                    continue
                kept.append(raw.rstrip(b"\n") + b"\n")
                if row["call"] == call:
                    done[row["start"]] = row["responses"]
        if stale:
            print(f"mgrpo evaluate: {self.store}: dropping {stale} chunk(s) generated under other settings",
                  file=sys.stderr, flush=True)
        if stale or dropped:
            with atomic_path(self.store) as tmp:
                tmp.write_bytes(b"".join(kept))
        return done


def _malformed(row: dict, n_prompts: int, per_chunk: int, n: int) -> str | None:
    """Why a stored row of this call cannot be used, or None."""
    start, stored = row.get("start"), row.get("responses")
    if not (type(start) is int and 0 <= start < n_prompts and start % per_chunk == 0):
        return f"start {start!r} is not where a chunk of this call starts"
    size = min(per_chunk, n_prompts - start)
    if not (isinstance(stored, list) and len(stored) == size and all(
            isinstance(r, list) and len(r) == n and all(isinstance(t, str) for t in r) for r in stored)):
        return f"its responses are not {size} prompts x {n} texts"
    return None


def _skip(store: Path, number: int, why: str) -> None:
    print(f"mgrpo evaluate: {store}:{number}: ignored ({why}); its chunk is generated again", file=sys.stderr,
          flush=True)
