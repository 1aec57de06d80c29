"""Generation backends behind one interface: Hugging Face transformers (CPU, tests) and vLLM (GPUs).

Every benchmark (toy, lm-eval tasks, code) samples through a :class:`Generator`, so the sampling settings
(temperature, top_p, max_tokens, n samples, seed) take exactly one path into either backend.

    generator = load_generator("ckpt/", backend="hf")
    prompt = generator.apply_chat_template([{"role": "user", "content": "1+1?"}])
    responses = generator.generate([prompt], n=8, params=SamplingParams(temperature=0.8, max_tokens=512))
    # -> [[8 strings]]
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

from mgrpo.run_spec import check_seed
from mgrpo.vllm_env import without_flashinfer_sampler

BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings shared by both backends. ``temperature == 0`` means greedy decoding."""
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int = 3072
    seed: int = 0

    def __post_init__(self):
        # inf samples uniformly at random (and NaN fails only mid-generation): neither is a setting anyone means
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        check_seed(self.seed)  # the range `mgrpo train` takes (check_seed says why)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation run was asked for; passed to the code benchmarks as ``settings``."""
    model: str
    backend: str
    sampling: SamplingParams
    samples: int | None = None        # samples per problem; None = each benchmark's protocol default
    limit: int | None = None          # first N problems only (smoke tests)
    extra: dict = field(default_factory=dict)


class Generator(Protocol):
    name: str          # model path (for result files)
    backend: str       # "hf" | "vllm" | anything a test fake names itself

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[str]]:
        """``n`` sampled continuations (text, special tokens removed) for each prompt, in prompt order."""

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt string for a conversation, rendered with the model's own chat template."""


class ModelDirError(ValueError):
    pass


def check_model_dir(model: str | Path) -> Path:
    """Fail early (before any generation) unless ``model`` is a loadable HF-format model directory."""
    path = Path(model)
    if not path.is_dir():
        raise ModelDirError(f"model directory not found: {path}")
    config = path / "config.json"
    if not config.is_file():
        raise ModelDirError(f"{path} is not a model directory: no config.json")
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(str(path))
    except Exception as err:  # noqa: BLE001 -- any failure here means "not a loadable model"
        raise ModelDirError(f"{path} is not a loadable model: {type(err).__name__}: {err}") from None
    return path


def _render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"the tokenizer of {tokenizer.name_or_path} has no chat template; "
                         "benchmarks other than `toy` prompt through the model's chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


class BackendNotInstalled(ImportError):
    """A generation backend that this environment lacks (vLLM): `mgrpo evaluate` says it in one line."""


class HFGenerator:
    """transformers ``generate`` on one device (CPU in tests); prompts are batched with left padding."""

    backend = "hf"

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 16, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # checked before the model loads: both would otherwise fail only at the first generate call, or as an
        # AssertionError from torch that names no option
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]  # torch's can run to 60 lines
            raise ValueError(f"device {device!r} is not usable here: {reason}") from None
        self.name = str(check_model_dir(model_dir))
        self.device = device
        self.batch_size = batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, padding_side="left")
            model = AutoModelForCausalLM.from_pretrained(self.name, dtype=dtype)
        except Exception as err:  # noqa: BLE001 -- truncated or corrupt weights raise errors that name no file
            raise ModelDirError(f"{self.name} is not a loadable model: {type(err).__name__}: {err}") from err
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model.to(device).eval()
        # Drop the checkpoint's sampling defaults (generation_config.json may set top_k, repetition_penalty,
        # ...): only SamplingParams decide how we sample, as with vLLM's explicit SamplingParams.
        from transformers import GenerationConfig

        saved = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            bos_token_id=saved.bos_token_id, eos_token_id=saved.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id)
        self._torch = torch

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return _render_chat(self.tokenizer, messages, add_generation_prompt)

    def _encode(self, prompts: Sequence[str]):
        # A chat template usually writes the BOS token itself: do not add a second one.
        bos = self.tokenizer.bos_token
        templated = bos is not None and all(p.startswith(bos) for p in prompts)
        return self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                              add_special_tokens=not templated).to(self.device)

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[str]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        torch = self._torch
        torch.manual_seed(params.seed)  # one seed per call: same prompts + settings -> same samples
        # top_k=0 turns off transformers' default top-k of 50 (vLLM samples from the full distribution).
        greedy = params.temperature == 0
        sampling = dict(do_sample=False) if greedy else \
            dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        # Greedy decoding has one answer per prompt (transformers refuses num_return_sequences > 1 without
        # sampling): decode once and repeat it, which is what vLLM's n greedy samples are.
        per_prompt = 1 if greedy else n
        out: list[list[str]] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start:start + self.batch_size])
            inputs = self._encode(batch)
            with torch.no_grad():
                tokens = self.model.generate(
                    **inputs, max_new_tokens=params.max_tokens, num_return_sequences=per_prompt,
                    pad_token_id=self.tokenizer.pad_token_id, **sampling)
            new_tokens = tokens[:, inputs["input_ids"].shape[1]:]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            out.extend(texts[i * per_prompt:(i + 1) * per_prompt] * (n // per_prompt) for i in range(len(batch)))
        return out


class VLLMGenerator:
    """vLLM offline inference: tensor parallel inside one engine, data parallel across engine processes.

    Each prompt carries its own seed (``params.seed + n x prompt index``), so the samples do not depend on
    how prompts are split across data-parallel engines. vLLM draws sample ``j`` of a request seeded ``s`` with
    seed ``s + j`` (vllm/v1/engine/parallel_sampling.py), so the n x index spacing gives every sample of a call a
    seed of its own (with ``seed + index``, sample 1 of prompt 0 and sample 0 of prompt 1 shared one).
    """

    backend = "vllm"

    def __init__(self, model_dir: str | Path, tensor_parallel_size: int = 1, data_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, dtype: str = "auto"):
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise BackendNotInstalled("vllm not installed: install vllm on the GPU machine, or use --backend hf") from None
        without_flashinfer_sampler(os.environ)  # before any engine process starts
        self.name = str(check_model_dir(model_dir))
        if tensor_parallel_size < 1 or data_parallel_size < 1:
            raise ValueError("tensor_parallel_size and data_parallel_size must be >= 1")
        self.engine_args = dict(model=self.name, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                                gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
        self.data_parallel_size = data_parallel_size
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.name)
        self._llm = None

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return _render_chat(self.tokenizer, messages, add_generation_prompt)

    def generate(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[str]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        prompts = list(prompts)
        if self.data_parallel_size == 1:
            if self._llm is None:
                from vllm import LLM

                self._llm = LLM(seed=params.seed, **self.engine_args)
            return _vllm_generate(self._llm, prompts, list(range(len(prompts))), n, params)
        return _vllm_data_parallel(self.engine_args, self.data_parallel_size, prompts, n, params)


def _vllm_generate(llm, prompts: list[str], indices: list[int], n: int, params: SamplingParams) -> list[list[str]]:
    from vllm import SamplingParams as VSamplingParams

    per_prompt = [VSamplingParams(n=n, temperature=params.temperature, top_p=params.top_p,
                                  max_tokens=params.max_tokens, seed=params.seed + n * index) for index in indices]
    outputs = llm.generate(prompts, per_prompt, use_tqdm=False)
    return [[completion.text for completion in output.outputs] for output in outputs]


def _vllm_worker(gpus: list[str], engine_args: dict, prompts: list[str], indices: list[int], n: int,
                 params: dict, out_file: str) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    from vllm import LLM

    sampling = SamplingParams(**params)
    llm = LLM(seed=sampling.seed, **engine_args)
    result = _vllm_generate(llm, prompts, indices, n, sampling)
    Path(out_file).write_text(json.dumps(result))


def _vllm_data_parallel(engine_args: dict, dp: int, prompts: list[str], n: int,
                        params: SamplingParams) -> list[list[str]]:
    """One vLLM engine per group of ``tensor_parallel_size`` GPUs, each on a contiguous shard of prompts."""
    import multiprocessing
    import tempfile

    tp = engine_args["tensor_parallel_size"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        gpus = [g for g in visible.split(",") if g]
    else:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    if len(gpus) < dp * tp:
        raise ValueError(f"data_parallel_size={dp} x tensor_parallel_size={tp} needs {dp * tp} GPUs, "
                         f"{len(gpus)} visible")
    bounds = [round(i * len(prompts) / dp) for i in range(dp + 1)]
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for rank in range(dp):
            indices = list(range(bounds[rank], bounds[rank + 1]))
            out_file = os.path.join(tmp, f"rank{rank}.json")
            proc = context.Process(target=_vllm_worker, args=(
                gpus[rank * tp:(rank + 1) * tp], engine_args, [prompts[i] for i in indices], indices,
                n, params.to_dict(), out_file))
            proc.start()
            jobs.append((proc, out_file))
        results: list[list[str]] = []
        for rank, (proc, out_file) in enumerate(jobs):
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"vLLM data-parallel rank {rank} failed (exit code {proc.exitcode})")
            results.extend(json.loads(Path(out_file).read_text()))
    return results


def load_generator(model: str | Path, backend: str = "hf", **options) -> Generator:
    """A generator for ``model`` on ``backend``; ``options`` go to the backend's constructor
    (hf: device, batch_size, dtype; vllm: tensor_parallel_size, data_parallel_size, gpu_memory_utilization,
    max_model_len, dtype)."""
    if backend == "hf":
        return HFGenerator(model, **options)
    if backend == "vllm":
        return VLLMGenerator(model, **options)
    raise ValueError(f"unknown generation backend {backend!r}; known: {', '.join(BACKENDS)}")
