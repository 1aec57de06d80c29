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
named on stderr and its chunk generated again, and each row starts on a line of its own, so a row cut short does not
take the next one with it. Rows written under another key (the checkpoint, data, settings or harness changed
between a preemption and the requeued start) are dropped from the store when it is read, so it holds one setting's
responses at most, however often the settings change before a result is cached.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from mgrpo.atomic import atomic_path
from mgrpo.evaluation.generation import Generator, SamplingParams

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
                _append_row(self.store, {"call": call, "key": self._key_id, "start": start, "responses": generated})
            responses.extend(generated)
            if len(prompts) > per_chunk:
                print(f"mgrpo evaluate: generated {min(start + per_chunk, len(prompts))}/{len(prompts)} prompts"
                      f"{' (kept in ' + str(self.store) + ')' if self.store else ''}", file=sys.stderr, flush=True)
        return responses

    def _stored_chunks(self, call: str, n_prompts: int, per_chunk: int, n: int) -> dict[int, list[list[str]]]:
        """The chunks of this call kept in the store, by start. The store is a cache: a line that cannot be used (cut
        short by a kill, glued to the next row, not a well-formed row of this call) is named and its chunk generated
        again; it never stops the evaluation."""
        done: dict[int, list[list[str]]] = {}
        kept: list[bytes] = []  # the lines written under this key (any call), the store's rows once rewritten
        stale = 0
        if not self.store.is_file():
            return done
        with open(self.store, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
                    _skip(self.store, number, f"not a JSON row ({error})")
                    continue
                if not isinstance(row, dict) or "call" not in row:
                    _skip(self.store, number, "not a row of responses")
                    continue
                if row.get("key") != self._key_id:
                    stale += 1  # generated under other settings (a checkpoint, the harness...): never used again
                    continue
                kept.append(raw.rstrip(b"\n") + b"\n")
                if row["call"] != call:
                    continue  # another call's (another n) of this benchmark and settings
                start, stored = row.get("start"), row.get("responses")
                size = min(per_chunk, n_prompts - start) if type(start) is int and 0 <= start < n_prompts \
                    and start % per_chunk == 0 else None
                if size is None:
                    _skip(self.store, number, f"start {start!r} is not where a chunk of this call starts")
                elif not (isinstance(stored, list) and len(stored) == size and all(
                        isinstance(r, list) and len(r) == n and all(isinstance(t, str) for t in r) for r in stored)):
                    _skip(self.store, number, f"its responses are not {size} prompts x {n} texts")
                else:
                    done[start] = stored
        if stale:  # the store would otherwise grow with every change of settings until a result is cached
            print(f"mgrpo evaluate: {self.store}: dropping {stale} chunk(s) generated under other settings",
                  file=sys.stderr, flush=True)
            with atomic_path(self.store) as tmp:
                tmp.write_bytes(b"".join(kept))
        return done


def _skip(store: Path, number: int, why: str) -> None:
    print(f"mgrpo evaluate: {store}:{number}: ignored ({why}); its chunk is generated again", file=sys.stderr,
          flush=True)


def _append_row(path: Path, row: dict) -> None:
    """Append one row on a line of its own: after a row cut short by a kill (no newline), the new row starts a new
    line instead of being glued to it (one unreadable line, which would take the new row with it)."""
    with open(path, "a+b") as handle:  # appends whatever the position; read to see how the file ends
        torn = False
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            torn = handle.read(1) != b"\n"
        handle.write((b"\n" if torn else b"") + json.dumps(row).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
