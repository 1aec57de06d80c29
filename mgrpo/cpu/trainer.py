"""Toy GRPO-family trainer on CPU: any registered method, KV-cached rollouts, resumable, deterministic.

One optimizer step: sample ``prompts_per_step`` training prompts; the policy writes M = G - N
rollouts per prompt at temperature T and (for momentum methods) the momentum model writes N;
``mgrpo.core.score_group`` filters, votes, rewards and computes advantages per prompt; only
in-loss policy rollouts enter ``mgrpo.core.policy_loss``; AdamW steps; the momentum model is
EMA-updated. Same seed -> identical metrics except the timing fields (``TIMING_FIELDS``).

Resumable state (checkpoints, the live metrics file) lives in ``spec.work``; ``spec.out`` is
written once, at the end, by renaming a finished temp directory (Snakemake deletes declared
outputs before a job starts).
"""
from __future__ import annotations

import copy
import json
import math
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mgrpo import core as mcore
from mgrpo.atomic import atomic_dir, remove_stale_temps, write_json, write_jsonl
from mgrpo.cpu import rollout as ro
from mgrpo.jsonl import append_row, truncate_log
from mgrpo.run_metrics import METRIC_KEYS
from mgrpo.run_spec import RUN_DIR_MARKERS, unused_at_default

TIMING_FIELDS = ("step_seconds", "rollouts_per_s")  # the only fields that differ between runs with one seed
CHECKPOINT_PATTERN = re.compile(r"^step_(\d{6})$")
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class CpuSettings:
    """Backend settings (``--set KEY=VALUE``). Defaults are the embedded toy config (docs/toy_study.md)."""
    steps: int = 150
    prompts_per_step: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip: float = 0.2
    kl_coef: float = 0.0
    max_grad_norm: float = 1.0
    max_new_tokens: int = 16
    eval_every: int = 10
    eval_temperature: float = 1.0
    eval_samples: int = 4
    eval_prompts: int = 200  # first rows of val.jsonl used for val_acc (and the best checkpoint); 0 = all
    save_every: int = 25
    threads: int = 1

    def validate(self) -> None:
        positive_ints = ("steps", "prompts_per_step", "max_new_tokens", "eval_every", "eval_samples",
                         "save_every", "threads")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"setting {name!r} must be an integer >= 1 (got {value!r})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"setting 'lr' must be a finite number > 0 (got {self.lr!r})")
        # inf would otherwise surface steps later as a NaN loss or a sampling error that names no setting
        # (max_grad_norm=0 already means no clipping)
        for name in ("weight_decay", "kl_coef", "clip", "max_grad_norm"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"setting {name!r} must be a finite number >= 0 (got {value!r})")
        if not (self.eval_temperature > 0 and math.isfinite(self.eval_temperature)):
            raise ValueError(f"setting 'eval_temperature' must be a finite number > 0 "
                             f"(got {self.eval_temperature!r})")
        if self.eval_prompts < 0:
            raise ValueError(f"setting 'eval_prompts' must be >= 0 (got {self.eval_prompts!r})")


class NonFiniteLossError(FloatingPointError):
    pass


# ------------------------------------------------------------------------------------------------ set-up

def settings_from(overrides) -> CpuSettings:
    """The trainer's settings from ``--set`` overrides; an unknown key or a bad value is a ValueError naming it."""
    from mgrpo.run_spec import apply_settings

    settings = apply_settings(CpuSettings, dict(overrides or {}))
    settings.validate()
    return settings


def resolved_settings(spec) -> dict:
    """The run's settings with every default filled in: what the work folder's record compares."""
    return asdict(settings_from(spec.settings))


def validate_spec(spec) -> tuple[mcore.Method, CpuSettings]:
    """Everything that can be checked before a model is loaded; raises ValueError naming the culprit."""
    method = mcore.get_method(spec.method)
    mcore.validate_hyperparameters(method, spec.G, spec.N, spec.momentum, spec.iqr_k)
    if not (spec.temperature > 0 and math.isfinite(spec.temperature)):
        raise ValueError(f"temperature T must be a finite number > 0 (got {spec.temperature!r})")
    settings = settings_from(spec.settings)
    for name in ("train.jsonl", "val.jsonl"):
        if not (Path(spec.data) / name).is_file():
            raise FileNotFoundError(f"data file not found: {Path(spec.data) / name}"
                                    + (" (toy data written before val.jsonl existed: rerun `mgrpo toy-data`)"
                                       if name == "val.jsonl" else ""))
    if not (Path(spec.base_model) / "config.json").is_file():
        raise FileNotFoundError(f"base model is not an HF model dir (no config.json): {spec.base_model}")
    return method, settings


def _fingerprint(spec, settings: CpuSettings) -> dict:
    """What must match for a checkpoint to be resumed (paths of outputs may move)."""
    d = {k: v for k, v in spec.to_json().items() if k not in ("out", "work", "settings")}
    d["settings"] = asdict(settings)
    return json.loads(json.dumps(d, sort_keys=True))


def _load_model(path: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    model.train()
    return model


# ------------------------------------------------------------------------------------------------ checkpoints

def _checkpoints(work: Path) -> list[tuple[int, Path]]:
    found = []
    for child in work.iterdir() if work.is_dir() else []:
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and (child / "state.pt").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _save_checkpoint(work: Path, step: int, state: dict) -> None:
    with atomic_dir(work / f"step_{step:06d}") as tmp:
        torch.save(state, tmp / "state.pt")
    for _, old in _checkpoints(work)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ one step

def _group_rows(per_prompt: int, prompt: int) -> range:
    return range(prompt * per_prompt, (prompt + 1) * per_prompt)


def score_step(method, answers_policy, answers_momentum, ent_policy, ent_momentum, sc_policy, sc_momentum,
               golds, M: int, N: int, k: float) -> list:
    """``score_group`` per prompt; group order is the policy's M rollouts, then the momentum's N. The method's reward
    gets the one trajectory statistic it declares (``mcore.reward_statistic``), as on the verl backend."""
    reads_entropy = mcore.reward_statistic(method.reward) == "entropy"
    scores = []
    for i, gold in enumerate(golds):
        pol, mom = _group_rows(M, i), _group_rows(N, i)
        ent = [ent_policy[r] for r in pol] + [ent_momentum[r] for r in mom]
        sc = [sc_policy[r] for r in pol] + [sc_momentum[r] for r in mom]
        scores.append(mcore.score_group(
            method,
            [answers_policy[r] for r in pol] + [answers_momentum[r] for r in mom],
            is_momentum=[False] * M + [True] * N,
            entropies=ent if reads_entropy else None, self_certainties=None if reads_entropy else sc,
            gold=gold, k=k))
    return scores


def policy_loss_inputs(scores: list, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and in-loss flags for the policy rollouts only, in rollout order (prompt-major).

    The first M entries of each group are the policy's; momentum entries are never returned,
    and a momentum entry flagged in-loss would be a bug in the method, so it is refused.
    """
    advantages, in_loss = [], []
    for score in scores:
        if np.asarray(score.in_loss[M:]).any():
            raise RuntimeError("score_group put a momentum rollout in the loss")
        advantages.extend(np.asarray(score.advantages[:M], dtype=np.float64).tolist())
        in_loss.extend(np.asarray(score.in_loss[:M], dtype=bool).tolist())
    return torch.tensor(advantages, dtype=torch.float32), torch.tensor(in_loss, dtype=torch.bool)


def _answers(tokenizer, rollouts) -> list[str | None]:
    from mgrpo.toy.task import extract_answer

    return [extract_answer(text) for text in ro.decode_responses(tokenizer, rollouts)]


def _traj_stats(logits, rollouts) -> tuple[list[float], list[float]]:
    mask = rollouts.response_mask
    entropy = mcore.trajectory_entropy(logits, mask)
    certainty = mcore.self_certainty(logits, mask)
    return entropy.tolist(), certainty.tolist()


def _mean(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


# ------------------------------------------------------------------------------------------------ the run

def train(spec) -> Path:
    """Run (or resume) one training run; returns ``spec.out``."""
    from mgrpo.toy.task import check_generation_budget, read_jsonl
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    method, settings = validate_spec(spec)
    hf_logging.disable_progress_bar()
    torch.set_num_threads(settings.threads)
    G, N, T = spec.G, spec.N, spec.temperature
    M = G - N
    work, out = Path(spec.work), Path(spec.out)
    work.mkdir(parents=True, exist_ok=True)
    metrics_path = work / "metrics.jsonl"

    train_rows = read_jsonl(Path(spec.data) / "train.jsonl", require_answer=False)  # labels: diagnostics only
    unlabelled = [i for i, row in enumerate(train_rows) if row.get("answer") in (None, "")]
    if unlabelled and method.reward == "ground_truth":
        raise ValueError(f"method {method.name!r} rewards with the labels, but {Path(spec.data) / 'train.jsonl'} "
                         f"line {unlabelled[0] + 1} has no 'answer'")
    val_rows = read_jsonl(Path(spec.data) / "val.jsonl")
    if settings.eval_prompts:
        val_rows = val_rows[:settings.eval_prompts]
    if settings.prompts_per_step > len(train_rows):
        raise ValueError(f"setting 'prompts_per_step' = {settings.prompts_per_step} exceeds the "
                         f"{len(train_rows)} rows of {Path(spec.data) / 'train.jsonl'}")

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
        policy = _load_model(spec.base_model)
    except Exception as err:  # noqa: BLE001 -- a bad config.json or truncated weights raise errors naming no option
        raise ValueError(f"base model {spec.base_model} is not a loadable model: {type(err).__name__}: "
                         f"{(str(err).strip().splitlines() or [''])[0]}") from err
    check_generation_budget(tokenizer, train_rows, settings.max_new_tokens, str(Path(spec.data) / "train.jsonl"),
                            "max_new_tokens (--set max_new_tokens=N)")
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    momentum_model = copy.deepcopy(policy).requires_grad_(False) if method.momentum else None
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    torch.manual_seed(spec.seed)
    sampler = torch.Generator().manual_seed(spec.seed)
    prompt_rng = np.random.default_rng(spec.seed)
    fingerprint = _fingerprint(spec, settings)
    best = {"val_acc": -1.0, "step": -1, "state": None}

    def evaluate(step: int) -> dict:
        eval_gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)
        kwargs = dict(max_new_tokens=settings.max_new_tokens)
        sampled = ro.accuracy(policy, tokenizer, val_rows, temperature=settings.eval_temperature,
                              samples=settings.eval_samples, generator=eval_gen, **kwargs)
        greedy = ro.accuracy(policy, tokenizer, val_rows, temperature=1.0, samples=1, greedy=True, **kwargs)
        # best/ is a trained checkpoint (step 0 is the base model), as on verl; the last step is always evaluated
        if step > 0 and sampled > best["val_acc"]:
            best.update(val_acc=sampled, step=step, state=copy.deepcopy(policy.state_dict()))
        return {"val_acc": sampled, "val_acc_greedy": greedy}

    checkpoints = _checkpoints(work)
    if checkpoints:
        start_step, ckpt_dir = checkpoints[-1]
        try:
            state = torch.load(ckpt_dir / "state.pt", weights_only=False)
        except Exception as err:  # noqa: BLE001 -- a damaged file (written whole, then cut by a disk) names nothing
            before = f"step {checkpoints[-2][0]}" if len(checkpoints) > 1 else "the start"
            raise ValueError(f"checkpoint {ckpt_dir / 'state.pt'} cannot be read ({type(err).__name__}: {err}); "
                             f"delete {ckpt_dir} to resume from {before}") from err
        if unused_at_default(state["fingerprint"]) != unused_at_default(fingerprint):  # m, k unused: the same run
            differing = sorted(k for k in set(fingerprint) | set(state["fingerprint"])
                               if fingerprint.get(k) != state["fingerprint"].get(k))
            raise ValueError(f"checkpoint {ckpt_dir} was written by a run with different arguments "
                             f"({', '.join(differing)}); use another --work dir or delete it")
        policy.load_state_dict(state["policy"])
        if momentum_model is not None:
            momentum_model.load_state_dict(state["momentum"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler_rng"])
        prompt_rng.bit_generator.state = state["prompt_rng"]
        torch.set_rng_state(state["torch_rng"])
        best = state["best"]
        truncate_log(metrics_path, start_step)
    else:
        start_step = 0
        row = {key: None for key in METRIC_KEYS} | {"step": 0} | evaluate(0)
        write_jsonl(metrics_path, [row])

    prompts_all = ro.encode_prompts(tokenizer, [r["prompt"] for r in train_rows])
    sample_kwargs = dict(temperature=T, max_new_tokens=settings.max_new_tokens,
                         eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, generator=sampler)

    for step in range(start_step + 1, settings.steps + 1):
        started = time.perf_counter()
        picks = prompt_rng.choice(len(train_rows), size=settings.prompts_per_step, replace=False).tolist()
        golds = [None if train_rows[i].get("answer") in (None, "") else str(train_rows[i]["answer"]) for i in picks]
        pol = ro.sample(policy, [prompts_all[i] for i in picks for _ in range(M)], **sample_kwargs)
        ans_pol = _answers(tokenizer, pol)
        ent_pol, sc_pol = _traj_stats(pol.sampling_logits, pol)
        if N:
            mom = ro.sample(momentum_model, [prompts_all[i] for i in picks for _ in range(N)], **sample_kwargs)
            ans_mom = _answers(tokenizer, mom)
            if method.entropy_filter:
                # The policy's view of the momentum rows, as verl's old-log-prob pass gives it: the IQR filter then
                # compares all G rollouts on one model. No gradient: these rows never reach the loss.
                with torch.no_grad():
                    ent_mom, sc_mom = _traj_stats(ro.response_logits(policy, mom, T), mom)
            else:  # only the filter reads momentum rows' statistics (their rewards are zeroed): the sampler's, free
                ent_mom, sc_mom = _traj_stats(mom.sampling_logits, mom)
        else:
            ans_mom, ent_mom, sc_mom = [], [], []
        scores = score_step(method, ans_pol, ans_mom, ent_pol, ent_mom, sc_pol, sc_mom, golds, M, N, spec.iqr_k)
        advantages, in_loss = policy_loss_inputs(scores, M)

        # Only the policy's rollouts are ever forwarded with a gradient.
        logp = ro.token_logprobs(ro.response_logits(policy, pol, T), pol.response_ids)
        with torch.no_grad():
            ref_logp = ro.token_logprobs(ro.response_logits(reference, pol, T), pol.response_ids)
        mask = pol.response_mask.float() * in_loss[:, None].float()
        loss, _ = mcore.policy_loss(logp, logp.detach(), advantages, mask, clip=settings.clip,
                                    ref_logp=ref_logp, kl_coef=settings.kl_coef)
        if not torch.isfinite(loss):
            last = _checkpoints(work)
            kept = f"last good checkpoint: {last[-1][1]}" if last else "no checkpoint was written yet"
            raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at step {step}; stopping ({kept})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(),
                                                   settings.max_grad_norm or float("inf"))
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(f"non-finite gradient norm at step {step}; stopping "
                                     f"(last good checkpoint kept in {work})")
        optimizer.step()
        if momentum_model is not None:
            mcore.ema_update_(list(momentum_model.parameters()), list(policy.parameters()), spec.momentum)
        seconds = time.perf_counter() - started

        # over the tokens of the loss, as verl's kl_loss is (momentum and filtered rows are not in it)
        kl = float((mcore.low_var_kl(logp.detach(), ref_logp) * mask).sum() / mask.sum().clamp(min=1))
        is_momentum = np.arange(G) >= M  # each group: the policy's M rollouts, then the momentum model's N
        row = {
            "step": step,
            **mcore.step_metrics([(s, is_momentum, s.in_loss) for s in scores]),
            "entropy": _mean(ent_pol),
            "kl": kl,
            "loss": float(loss.item()),
            "lr": optimizer.param_groups[0]["lr"],
            "grad_norm": float(grad_norm),
            "step_seconds": seconds,
            "rollouts_per_s": settings.prompts_per_step * G / seconds,
        }
        if step % settings.eval_every == 0 or step == settings.steps:
            row |= evaluate(step)
        append_row(metrics_path, row)

        if step % settings.save_every == 0 or step == settings.steps:
            _save_checkpoint(work, step, {
                "step": step, "fingerprint": fingerprint,
                "policy": policy.state_dict(),
                "momentum": momentum_model.state_dict() if momentum_model is not None else None,
                "optimizer": optimizer.state_dict(),
                "sampler_rng": sampler.get_state(), "prompt_rng": prompt_rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "best": best,
            })

    _write_run_dir(out, spec, settings, method, policy, tokenizer, best, metrics_path)
    return out


def _write_run_dir(out: Path, spec, settings, method, policy, tokenizer, best, metrics_path: Path) -> None:
    """Assemble RUN_DIR in a temp dir beside it, then rename it into place."""
    import transformers
    import tokenizers

    import mgrpo

    remove_stale_temps(out)  # of a kill during an earlier start's final write (the work lock makes us the writer)
    with atomic_dir(out, replaceable=RUN_DIR_MARKERS) as tmp:
        policy.save_pretrained(tmp / "final")
        tokenizer.save_pretrained(tmp / "final")
        best_model = copy.deepcopy(policy)
        best_model.load_state_dict(best["state"])
        best_model.save_pretrained(tmp / "best")
        tokenizer.save_pretrained(tmp / "best")
        shutil.copyfile(metrics_path, tmp / "metrics.jsonl")
        run = {
            "spec": spec.to_json(),
            "backend": "cpu",
            "settings": asdict(settings),
            "method": asdict(method),
            "best": {"step": best["step"], "val_acc": best["val_acc"]},
            "timing_fields": list(TIMING_FIELDS),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                         "numpy": np.__version__, "mgrpo": getattr(mgrpo, "__version__", None)},
        }
        write_json(tmp / "run.json", run, sort_keys=True)
