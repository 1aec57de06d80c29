"""The environment vLLM's processes start with, shared by training (verl's rollout) and evaluation (offline LLM)."""
from __future__ import annotations

import importlib.util
from typing import MutableMapping


def without_flashinfer_sampler(environ: MutableMapping[str, str]) -> None:
    """Where FlashInfer is not installed, have vLLM sample with its own top-k/top-p sampler.

    vLLM (0.24) imports FlashInfer for its sampler at engine start unless ``VLLM_USE_FLASHINFER_SAMPLER=0``, and
    fails there without it (the H200 run of 2026-12-04: ``No module named 'flashinfer'``). FlashInfer is in vLLM's
    CUDA requirements but a stack can lack it (the carried one skips it: its kernels are ~1 GiB). A value the user
    set is kept. Call it before vLLM's processes start: they inherit the environment."""
    if importlib.util.find_spec("flashinfer") is None:
        environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
