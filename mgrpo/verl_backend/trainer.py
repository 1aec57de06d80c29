"""``mgrpo train --backend verl``: RunSpec -> the paper's verl config -> verl's Ray trainer -> RUN_DIR.

Everything that can be checked is checked before Ray starts (method, N, model directory, data files, settings,
every Hydra override). ``spec.settings`` holds two kinds of keys:

* fields of ``VerlSettings`` (plain names, e.g. ``steps=200``, ``n_gpus_per_node=4``);
* Hydra overrides of the verl config (any key with a dot or a leading ``+``/``~``, e.g.
  ``actor_rollout_ref.rollout.gpu_memory_utilization=0.6``), applied last, so any verl option stays open.

Resumable state lives in ``spec.work`` (verl checkpoints under ``checkpoints/``, the live ``metrics.jsonl``);
a re-run with the same arguments (e.g. after a SLURM requeue) resumes from the newest complete checkpoint.
``spec.out`` is assembled in a temp directory and renamed into place at the end: run.json, metrics.jsonl and the
HF-format ``final/`` and ``best/`` models (verl's model_merger).
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mgrpo import core as mcore
from mgrpo.atomic import atomic_dir, remove_stale_temps, write_json
from mgrpo.jsonl import read_log
from mgrpo.run_spec import RUN_DIR_MARKERS
from mgrpo.vllm_env import without_flashinfer_sampler
from mgrpo.verl_backend import checkpoints as ckpt
from mgrpo.verl_backend import stages
from mgrpo.verl_backend.data import PREPARE_HINT, check_prepared

CONFIG_DIR = Path(__file__).resolve().parent / "config"
CONFIG_NAME = "mgrpo_paper"
REWARD_FILE = Path(__file__).resolve().parent / "reward.py"
PLACEMENTS = ("serial", "split")  # where momentum rollouts are generated (replica_split.py)
# The actor's and reference model's attention in verl's FSDP engine (transformers' attn_implementation). verl 0.9.1
# asks for flash_attention_2 unless told otherwise, which needs the flash-attn package: neither verl's vllm extra nor
# vLLM brings it, and without it every run stopped at model build on an H200 (2026-12-04). "auto" takes it where it
# is installed and PyTorch's sdpa elsewhere: the same attention (packed sequences are kept apart by their
# position_ids in both, tests/test_verl_workers.py), the speed differs.
ATTENTION = ("auto", "flash_attention_2", "sdpa", "eager")
ATTENTION_KEY = "actor_rollout_ref.model.override_config.attn_implementation"
FLASH_ATTENTION_HINT = "pip install flash-attn==2.8.3 (verl's fsdp extra; built against the installed torch)"
SPLIT_ROUTER_FILE = CONFIG_DIR / "momentum_router.yaml"
SPLIT_AGENT_LOOP_FILE = CONFIG_DIR / "momentum_agent_loop.yaml"
INSTALL_HINT = "pip install 'verl==0.9.1' 'TransferQueue==0.1.11' cachetools fastapi uvicorn pyzmq msgspec (GPU: 'verl[vllm]==0.9.1')"
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:+@-]*$")


@dataclass(frozen=True)
class VerlSettings:
    """Backend settings (``--set KEY=VALUE``); verl options go through Hydra keys (with dots) instead."""
    steps: Optional[int] = None  # trainer.total_training_steps (None: trainer.total_epochs over the data)
    n_gpus_per_node: int = 8
    nnodes: int = 1
    save_every: int = 25  # trainer.save_freq
    eval_every: int = 25  # trainer.test_freq (must be a multiple of save_every: best/ is a saved step)
    momentum_placement: str = "serial"  # momentum rollouts: a second round ("serial") or own replicas ("split")
    momentum_in_loss: bool = False  # released code's intent; the paper keeps momentum rollouts out of the loss
    vote_threshold: Optional[float] = None  # SRT option: no label below this majority share (original: 0.5)
    soft_reward: bool = False  # SRT option: reward = answer frequency
    keep_fraction: float = 1.0  # SRT option: keep the most self-consistent prompts
    wandb: bool = True  # log to wandb too (WANDB_MODE=offline unless set)
    ray_num_cpus: Optional[int] = None  # ray_init.num_cpus (16 avoids a hang on tiny CPU hosts)
    attn_implementation: str = "auto"  # FSDP actor/reference attention; auto: flash_attention_2 if installed, else sdpa
    convert: bool = True  # write final/ and best/ as HF models at the end

    def validate(self) -> None:
        for name in ("n_gpus_per_node", "nnodes", "save_every", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"setting {name!r} must be an integer >= 1 (got {value!r})")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"setting 'steps' must be an integer >= 1 (got {self.steps!r})")
        if self.eval_every % self.save_every:
            raise ValueError(f"setting 'eval_every' ({self.eval_every}) must be a multiple of 'save_every' "
                             f"({self.save_every}): the best checkpoint must be a saved step")
        if self.momentum_placement not in PLACEMENTS:
            raise ValueError(f"setting 'momentum_placement' must be one of {', '.join(PLACEMENTS)} "
                             f"(got {self.momentum_placement!r})")
        if self.attn_implementation not in ATTENTION:
            raise ValueError(f"setting 'attn_implementation' must be one of {', '.join(ATTENTION)} "
                             f"(got {self.attn_implementation!r})")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"setting 'keep_fraction' must be in (0, 1] (got {self.keep_fraction!r})")
        if self.vote_threshold is not None and not 0.0 <= self.vote_threshold <= 1.0:
            raise ValueError(f"setting 'vote_threshold' must be in [0, 1] (got {self.vote_threshold!r})")


# ---------------------------------------------------------------------------------------------------- settings

def is_hydra_key(key: str) -> bool:
    return "." in key or key.startswith(("+", "~"))


def split_settings(settings) -> tuple[dict, list[str]]:
    """``spec.settings`` -> (VerlSettings fields, Hydra overrides ``key=value``)."""
    own, hydra = {}, []
    for key, value in dict(settings or {}).items():
        if is_hydra_key(key):
            hydra.append(f"{key}={_hydra_value(value)}" if not key.startswith("~") or value not in (None, "")
                         else key)
        else:
            own[key] = value
    return own, hydra


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = str(value)
    if _PLAIN_VALUE.match(text) or text.startswith(("[", "{")):
        return text
    # Hydra's quoted strings un-escape backslashes only before a quote (and before the closing one): escape those
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped) + "'"


def settings_from(overrides) -> tuple[VerlSettings, list[str]]:
    """``--set`` overrides -> (VerlSettings, Hydra overrides); an unknown plain key or a bad value is a ValueError
    naming it. Hydra keys are checked against verl's config when it is composed (``validate_spec``)."""
    from mgrpo.run_spec import apply_settings

    own, hydra = split_settings(overrides)
    settings = apply_settings(VerlSettings, own)
    settings.validate()
    return settings, hydra


def resolved_settings(spec) -> dict:
    """The run's settings with every default filled in, and its Hydra overrides: what the work folder's record
    compares."""
    settings, hydra = settings_from(spec.settings)
    return dataclasses.asdict(settings) | {"hydra_overrides": hydra}


def harness_overrides(spec, settings: VerlSettings, resuming: bool) -> list[str]:
    """The run's own values on top of the paper config (user Hydra overrides come after these)."""
    work = Path(spec.work).resolve()
    data = Path(spec.data).resolve()
    logger = "[console,wandb]" if settings.wandb else "[console]"
    values = {
        "actor_rollout_ref.model.path": Path(spec.base_model).resolve(),
        "data.train_files": data / "train.parquet",
        "data.val_files": data / "test.parquet",
        "data.seed": spec.seed,
        "actor_rollout_ref.actor.data_loader_seed": spec.seed,
        "actor_rollout_ref.rollout.n": spec.G,
        "actor_rollout_ref.rollout.temperature": spec.temperature,
        "reward.custom_reward_function.path": REWARD_FILE,
        "reward.custom_reward_function.name": "compute_score",
        "trainer.default_local_dir": work / "checkpoints",
        "trainer.experiment_name": Path(spec.out).name or "run",
        "trainer.n_gpus_per_node": settings.n_gpus_per_node,
        "trainer.nnodes": settings.nnodes,
        "trainer.save_freq": settings.save_every,
        "trainer.test_freq": settings.eval_every,
        "trainer.val_before_train": not resuming,
        "trainer.logger": logger,
        "mgrpo.method": spec.method,
        "mgrpo.momentum_rollouts": spec.N,
        "mgrpo.momentum": spec.momentum,
        "mgrpo.iqr_k": spec.iqr_k,
        "mgrpo.momentum_placement": settings.momentum_placement,
        "mgrpo.momentum_in_loss": settings.momentum_in_loss,
        "mgrpo.vote_threshold": settings.vote_threshold,
        "mgrpo.soft_reward": settings.soft_reward,
        "mgrpo.keep_fraction": settings.keep_fraction,
        "mgrpo.metrics_path": work / "metrics.jsonl",
        "mgrpo.seed": spec.seed,
    }
    if settings.momentum_placement == "split":  # verl's router plugin and agent-loop registry (replica_split.py)
        values["actor_rollout_ref.rollout.router_config_path"] = SPLIT_ROUTER_FILE
        values["actor_rollout_ref.rollout.agent.agent_loop_config_path"] = SPLIT_AGENT_LOOP_FILE
    values[ATTENTION_KEY] = resolve_attention(settings.attn_implementation)
    if settings.steps is not None:
        values["trainer.total_training_steps"] = settings.steps
        # verl's fit loop also stops at total_epochs (default 1): without this, steps > one epoch ends at the epoch's
        # last step, unsaved and unvalidated (is_last_step never true). steps epochs bound it (every epoch >= 1 step).
        values["trainer.total_epochs"] = settings.steps
    if settings.ray_num_cpus is not None:
        values["ray_kwargs.ray_init.num_cpus"] = settings.ray_num_cpus
    return [f"{key}={value if key == 'trainer.logger' else _hydra_value(value)}" for key, value in values.items()]


def flash_attention_available() -> bool:
    from transformers.utils import is_flash_attn_2_available

    return is_flash_attn_2_available()


def resolve_attention(setting: str) -> str:
    """``auto`` -> flash_attention_2 where transformers finds flash-attn (and CUDA), else sdpa; others as given."""
    if setting != "auto":
        return setting
    return "flash_attention_2" if flash_attention_available() else "sdpa"


def compose_config(overrides: list[str]):
    """The paper config (config/mgrpo_paper.yaml on top of verl's ppo_trainer) with ``overrides`` applied.

    A bad override raises ValueError naming it. Without verl (whose ``ppo_trainer`` config it extends) it exits
    with the install hint, not with Hydra's "Could not load 'ppo_trainer'".
    """
    require_verl()
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        keys = [(o, o.split("=", 1)[0].lstrip("+~")) for o in overrides]
        # the key Hydra quotes, else the longest one the message contains ('...optim.lr' is in '...optim.lrr')
        culprit = next((o for o, key in keys if f"'{key}'" in message), None) or next(
            (o for o, key in sorted(keys, key=lambda item: -len(item[1])) if key in message), None)
        where = f" (override {culprit!r})" if culprit else ""
        raise ValueError(f"verl config{where}: {message}") from None
    finally:
        GlobalHydra.instance().clear()


def check_composed(config, spec) -> None:
    """Consistency checks on the composed config that Hydra cannot know about."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(config))
    if not config.reward.reward_model.enable:  # verl leaves the unused reward model's rollout name unset
        missing = [key for key in missing if not key.startswith("reward.reward_model.")]
    if missing:
        raise ValueError(f"verl config: missing value(s) for {', '.join(missing)}")
    if config.trainer.v1.trainer_mode != "mgrpo_sync" or not config.trainer.use_v1:
        raise ValueError("verl config: trainer.use_v1 must be true and trainer.v1.trainer_mode 'mgrpo_sync'")
    trainer, arr = config.trainer, config.actor_rollout_ref
    correction = config.algorithm.get("rollout_correction") or {}
    require_values({
        # verl writes latest_checkpointed_iteration.txt only for synchronous saves: no resume, no final/ without it
        "actor_rollout_ref.actor.checkpoint.async_save": (bool(arr.actor.checkpoint.get("async_save", False)), False),
        "'model' in actor_rollout_ref.actor.checkpoint.save_contents":
            ("model" in list(arr.actor.checkpoint.save_contents), True),  # final/ and best/ are converted from it
        # our pruning keeps the newest and the best step; verl's would delete best/'s step
        "trainer.max_actor_ckpt_to_keep": (trainer.get("max_actor_ckpt_to_keep"), None),
        "trainer.del_local_ckpt_after_load": (bool(trainer.get("del_local_ckpt_after_load", False)), False),
        # a preempted job resumes from its work folder (a fresh start is another --work or --restart-on-change)
        "trainer.resume_mode": (trainer.resume_mode, "auto"),
        "trainer.resume_from_path": (trainer.get("resume_from_path"), None),
        # the method's stage reads the entropies of the old-log-prob pass, which bypass mode skips
        "algorithm.rollout_correction.bypass_mode": (bool(correction.get("bypass_mode", False)), False),
        # verl applies importance weights / rejection sampling inside the advantage stage that the method's
        # stage replaces: set, they would be ignored without a word
        "algorithm.rollout_correction.rollout_is": (correction.get("rollout_is"), None),
        "algorithm.rollout_correction.rollout_rs": (correction.get("rollout_rs"), None),
    }, "the harness (checkpoints, resume, best/ and the method's stage)")
    method = mcore.get_method(spec.method)
    if method.momentum:
        # The momentum push loads the EMA into the actor and sends it through the colocated, in-process weight path
        # (update_weights mode 'naive'); with another checkpoint engine the policy sync would take a different path.
        # verl's rollout skip replays a cached policy batch without submitting prompts: no momentum groups.
        needed = {"actor_rollout_ref.rollout.checkpoint_engine.backend":
                  (arr.rollout.checkpoint_engine.backend, "naive"),
                  "actor_rollout_ref.hybrid_engine": (bool(arr.get("hybrid_engine", True)), True),
                  "skip.rollout_tq.enable": (bool(config.get("skip", {}).get("rollout_tq", {}).get("enable", False)),
                                             False),
                  # group filtering may sample a prompt of an earlier step, whose momentum rollouts are gone
                  "algorithm.filter_groups.enable": (bool((config.algorithm.get("filter_groups") or {}).get(
                      "enable", False)), False)}
        require_values(needed, f"method {method.name!r} (momentum rollouts from the shared rollout engine)")
    if config.mgrpo.momentum_placement == "split":
        check_split_placement(config, spec)
    if mcore.reward_statistic(method.reward) == "self_certainty":
        # The self-certainty statistic replaces the FSDP engine's entropy function, which only the
        # remove-padding, unfused, unchecked path calls. It replaces it in the actor update too, where an
        # entropy bonus (or the logged actor entropy) would silently become a self-certainty one.
        model, actor = config.actor_rollout_ref.model, config.actor_rollout_ref.actor
        needed = {"actor_rollout_ref.model.use_remove_padding": (model.use_remove_padding, True),
                  "actor_rollout_ref.model.use_fused_kernels": (model.use_fused_kernels, False),
                  "actor_rollout_ref.actor.entropy_checkpointing": (actor.get("entropy_checkpointing", False), False),
                  "actor_rollout_ref.actor.strategy in (fsdp, fsdp2)": (actor.strategy in ("fsdp", "fsdp2"), True),
                  "actor_rollout_ref.actor.entropy_coeff": (float(actor.entropy_coeff), 0.0),
                  "actor_rollout_ref.actor.calculate_entropy": (bool(actor.get("calculate_entropy", False)), False)}
        require_values(needed, f"method {method.name!r}")
    attention = config.actor_rollout_ref.model.override_config.get("attn_implementation")
    if attention == "flash_attention_2" and not flash_attention_available():
        raise ValueError(f"verl config: {ATTENTION_KEY}=flash_attention_2 needs the flash-attn package and a CUDA "
                         f"GPU, which transformers does not find here: {FLASH_ATTENTION_HINT}, or "
                         f"--set attn_implementation=sdpa (or auto)")
    if int(config.actor_rollout_ref.actor.ppo_mini_batch_size) > int(config.data.train_batch_size):
        raise ValueError("verl config: actor_rollout_ref.actor.ppo_mini_batch_size exceeds data.train_batch_size")


def require_values(needed: dict, what: str) -> None:
    """``needed``: {key: (value, the value required)}; a ValueError naming every key that differs."""
    wrong = [f"{k}={v!r} (needs {want!r})" for k, (v, want) in needed.items() if v != want]
    if wrong:
        raise ValueError(f"verl config: {what} needs " + ", ".join(wrong))


def rollout_replicas(config) -> int:
    """R, as verl's LLMServerManager counts colocated replicas: trainer GPUs / GPUs per rollout replica."""
    rollout = config.actor_rollout_ref.rollout
    per_replica = (int(rollout.tensor_model_parallel_size) * int(rollout.get("data_parallel_size", 1))
                   * int(rollout.get("pipeline_model_parallel_size", 1)))
    return int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes) // per_replica


def check_split_placement(config, spec) -> None:
    from mgrpo.verl_backend.replica_split import momentum_replica_count

    rollout, model = config.actor_rollout_ref.rollout, config.actor_rollout_ref.model
    lora = model.get("lora", {})
    # Requests are routed by our router plugin and agent loop; the EMA and its export are of the full weights; verl
    # passes full_determinism to its own router only; replicas are counted as colocated, undisaggregated ones.
    needed = {
        "actor_rollout_ref.rollout.router_config_path": (str(rollout.router_config_path), str(SPLIT_ROUTER_FILE)),
        "actor_rollout_ref.rollout.agent.agent_loop_config_path":
            (str(rollout.agent.agent_loop_config_path), str(SPLIT_AGENT_LOOP_FILE)),
        "actor_rollout_ref.rollout.disaggregation.enabled":
            (bool(rollout.get("disaggregation", {}).get("enabled", False)), False),
        "actor_rollout_ref.model.lora_rank": (int(model.get("lora_rank", 0) or 0), 0),
        "actor_rollout_ref.model.lora.rank": (int(lora.get("rank", 0) or 0), 0),
        "actor_rollout_ref.model.lora_adapter_path": (model.get("lora_adapter_path"), None),
        "actor_rollout_ref.model.lora.adapter_path": (lora.get("adapter_path"), None),
        "actor_rollout_ref.rollout.full_determinism": (bool(rollout.get("full_determinism", False)), False)}
    require_values(needed, "momentum_placement 'split'")
    try:
        momentum_replica_count(rollout_replicas(config), spec.G, spec.N)
    except ValueError as err:
        raise ValueError(f"setting 'momentum_placement': {err}") from None


# ---------------------------------------------------------------------------------------------------- checks

def require_verl() -> None:
    import warnings

    try:
        with warnings.catch_warnings():  # verl warns about every optional engine it cannot import
            warnings.simplefilter("ignore", UserWarning)
            import transfer_queue  # noqa: F401
            import verl  # noqa: F401
            from verl.trainer.ppo.v1 import register_trainer  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"verl backend not installed ({err}): {INSTALL_HINT}") from None


def validate_spec(spec):
    """Everything checkable before Ray starts; returns (method, settings, composed config)."""
    method, settings, hydra = check_arguments(spec)
    base = Path(spec.base_model)
    if not base.is_dir():
        raise FileNotFoundError(f"base model directory not found: {base}")
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"base model is not an HF model dir (no config.json): {base}")
    if not ckpt.read_hf_config(base / "config.json").get("model_type"):
        raise ValueError(f"{base / 'config.json'}: no 'model_type' (not an HF model config)")
    for name in ("train.parquet", "test.parquet"):
        path = Path(spec.data) / name
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path} ({PREPARE_HINT})")
        check_prepared(path)
    try:
        resuming = ckpt.latest_complete_step(Path(spec.work) / "checkpoints") is not None
    except ValueError:  # an emptied tracker: train() repairs it (or says why not), under the work lock
        resuming = True
    return method, settings, checked_config(spec, settings, hydra, resuming)


def check_arguments(spec):
    """The run's method, hyper-parameters and settings; returns (method, settings, Hydra overrides)."""
    method = mcore.get_method(spec.method)
    settings, hydra = settings_from(spec.settings)
    mcore.validate_hyperparameters(method, spec.G, spec.N, spec.momentum, spec.iqr_k, settings.momentum_in_loss)
    if not (spec.temperature > 0 and math.isfinite(spec.temperature)):
        raise ValueError(f"temperature T must be a finite number > 0 (got {spec.temperature!r})")
    stages.configure_method(method, settings.vote_threshold, settings.soft_reward, settings.keep_fraction)
    return method, settings, hydra


def check_run_config(spec) -> None:
    """``validate_spec`` without its files (base model, data, checkpoints): the workflow runs it at start, so that
    a misspelt or mistyped verl key fails before any job, not in the train job after the queue wait."""
    _, settings, hydra = check_arguments(spec)
    checked_config(spec, settings, hydra)


def checked_config(spec, settings: VerlSettings, hydra: list[str], resuming: bool = False):
    """The run's composed verl config, with the user's Hydra overrides and every check on it (owned keys, types,
    this backend's, verl's own). Reads no file: the workflow runs it at start, with the runs' own paths."""
    harness = harness_overrides(spec, settings, resuming)
    config = compose_config(harness + hydra)
    if hydra:
        own = compose_config(harness)
        check_owned_keys(harness, own, config)
        check_override_types(own, config, hydra)
    check_composed(config, spec)
    verl_validate(config)
    return config


# Harness keys a user override may still set: the attention (checked by name), the split placement's plugin
# paths (check_split_placement names them) and the GPU counts (read back from the composed config wherever they
# are used; the workflow checks resources.train.gpu against either form). Every other key the harness sets has
# its own flag or setting, which run.json, resume and conversion read.
OVERRIDABLE = (ATTENTION_KEY, "trainer.experiment_name", "actor_rollout_ref.rollout.router_config_path",
               "actor_rollout_ref.rollout.agent.agent_loop_config_path", "trainer.n_gpus_per_node", "trainer.nnodes")


def check_owned_keys(harness: list[str], own, config) -> None:
    """Refuse user overrides that change a value the harness set from the RunSpec/settings.

    Compared by value (``own``: the harness's overrides alone), so ``+``/``++`` keys and overrides of a parent
    node (``actor_rollout_ref.rollout='{n: 3}'``) are caught too."""
    from omegaconf import OmegaConf

    owned = [o.split("=", 1)[0] for o in harness if o.split("=", 1)[0] not in OVERRIDABLE]
    clash = [key for key in owned
             if OmegaConf.select(config, key, default=None) != OmegaConf.select(own, key, default=None)]
    if clash:
        raise ValueError(f"verl config: {', '.join(clash)} set by the harness from the run's arguments; use the "
                         f"corresponding mgrpo flag or setting (--G/--T/--N/--seed/--method/--work, --set steps/"
                         f"save_every/eval_every/...) instead of a Hydra override")


def check_override_types(default, config, hydra: list[str]) -> None:
    """verl's YAML has no types until its workers convert it inside Ray: a word where the default is a number or a
    bool would only fail there, or with a message that names no key. Refuse it here, naming the key."""
    from omegaconf import OmegaConf

    for override in hydra:
        key = override.split("=", 1)[0].lstrip("+")
        if key.startswith("~"):
            continue
        before, after = OmegaConf.select(default, key), OmegaConf.select(config, key)
        if isinstance(before, (bool, int, float)) and isinstance(after, str):
            kind = {bool: "true or false", int: "an integer", float: "a number"}[type(before)]
            raise ValueError(f"verl config: {key} = {after!r} is not {kind} (the paper config has {before!r})")


def verl_validate(config) -> None:
    """verl's own config validation (batch-size divisibility, ...), as a ValueError."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        validate_config(config=config, use_reference_policy=need_reference_policy(config),
                        use_critic=need_critic(config))
    except (AssertionError, ValueError) as err:
        raise ValueError(f"verl config rejected by verl.utils.config.validate_config: {err}") from None


# ---------------------------------------------------------------------------------------------------- the run

def train(spec) -> Path:
    require_verl()
    repaired = ckpt.repair_tracker(Path(spec.work) / "checkpoints")
    if repaired is not None:
        print(f"mgrpo train: {ckpt.TRACKER} was empty or unreadable (a kill while verl rewrote it); "
              f"resuming from step {repaired}, the newest complete one", file=sys.stderr)
    method, settings, config = validate_spec(spec)
    work, out = Path(spec.work), Path(spec.out)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(work.resolve()))
    repo_root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)
    without_flashinfer_sampler(os.environ)  # before Ray starts: its workers, and vLLM's, inherit the environment

    from verl.trainer.main_ppo import run_ppo

    from mgrpo.verl_backend.verl_trainer import MGRPOTaskRunner

    run_ppo(config, task_runner_class=MGRPOTaskRunner)
    if settings.convert:
        finalize_run_dir(spec, settings, method, config)
    return out


def finalize_run_dir(spec, settings: VerlSettings, method, config=None) -> Path:
    """Assemble RUN_DIR (run.json, metrics.jsonl, final/, best/) beside it, then rename it into place."""
    work, out = Path(spec.work), Path(spec.out)
    root = work / "checkpoints"
    latest = ckpt.latest_complete_step(root)
    if latest is None:
        raise FileNotFoundError(f"no complete verl checkpoint in {root} (latest_checkpointed_iteration.txt)")
    rows = read_log(work / "metrics.jsonl")
    val_by_step = {r["step"]: r["val_acc"] for r in rows if r.get("val_acc") is not None}
    saved = ckpt.checkpoint_steps(root)
    best = ckpt.best_step({s: v for s, v in val_by_step.items() if s > 0}, saved)
    best = latest if best is None else best
    # a kill during an earlier start's conversion left its temp (two models' worth) beside RUN_DIR; the work lock
    # makes this process RUN_DIR's one writer
    remove_stale_temps(out)
    with atomic_dir(out, replaceable=RUN_DIR_MARKERS) as tmp:
        ckpt.convert_to_hf(root / f"global_step_{latest}" / "actor", tmp / "final")
        ckpt.convert_to_hf(root / f"global_step_{best}" / "actor", tmp / "best")
        shutil.copyfile(work / "metrics.jsonl", tmp / "metrics.jsonl")
        write_json(tmp / "run.json", run_record(spec, settings, method, config, latest, best), sort_keys=True)
    return out


def run_record(spec, settings, method, config, final_step: int, best_step: int) -> dict:
    import importlib.metadata as md

    versions = {}
    for package in ("verl", "torch", "transformers", "vllm", "ray", "TransferQueue"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    record = {
        "spec": spec.to_json(),
        "backend": "verl",
        "settings": dataclasses.asdict(settings),
        "method": dataclasses.asdict(method),
        "final_step": final_step,
        "best_step": best_step,
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    if config is not None:
        from omegaconf import OmegaConf

        record["verl_config"] = OmegaConf.to_container(config, resolve=False)
    return record
