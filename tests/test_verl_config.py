"""Config composition (paper config through Hydra/OmegaConf) and validation before Ray starts."""
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("verl")
pytest.importorskip("hydra")

from mgrpo.core import UnknownMethodError  # noqa: E402
from mgrpo.run_spec import RunSpec  # noqa: E402
from mgrpo.verl_backend import trainer  # noqa: E402


@pytest.fixture()
def dirs(tmp_path, verl_inputs):
    return (tmp_path, *verl_inputs)


def spec_for(dirs, method="mgrpo", G=32, N=8, settings=None, **kwargs):
    tmp, model, data = dirs
    fields = dict(backend="verl", method=method, base_model=kwargs.pop("base_model", model), data=data,
                  out=tmp / "run", work=tmp / "work", G=G, temperature=1.1, seed=3, N=N,
                  settings=settings or {})
    fields.update(kwargs)
    return RunSpec(**fields)


def test_paper_config_resolves_with_table4_values(dirs):
    method, settings, cfg = trainer.validate_spec(spec_for(dirs))
    arr = cfg.actor_rollout_ref
    assert cfg.data.train_batch_size == 8
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (512, 3072)
    assert arr.actor.clip_ratio == 0.2 and arr.actor.clip_ratio_low == 0.2 and arr.actor.clip_ratio_high == 0.2
    assert arr.actor.optim.optimizer == "AdamW"
    assert list(arr.actor.optim.betas) == [0.9, 0.999] and arr.actor.optim.override_optimizer_config.eps == 1e-8
    assert arr.actor.optim.lr == 1e-6 and arr.actor.optim.lr_scheduler_type == "cosine"
    assert arr.actor.optim.lr_warmup_steps_ratio == 0.1
    assert arr.actor.use_kl_loss and arr.actor.kl_loss_coef == 0.005 and arr.actor.kl_loss_type == "low_var_kl"
    assert arr.rollout.temperature == 1.1 and arr.rollout.n == 32
    assert cfg.mgrpo.momentum_rollouts == 8 and cfg.mgrpo.momentum == 0.99 and cfg.mgrpo.iqr_k == 0.75
    assert cfg.trainer.use_v1 and cfg.trainer.v1.trainer_mode == "mgrpo_sync"
    # run values filled in by the harness
    assert Path(arr.model.path) == dirs[1].resolve()
    assert cfg.data.train_files.endswith("train.parquet") and cfg.data.seed == 3
    assert cfg.reward.custom_reward_function.path.endswith("mgrpo/verl_backend/reward.py")
    assert cfg.trainer.default_local_dir == str((dirs[0] / "work" / "checkpoints").resolve())
    assert cfg.trainer.val_before_train is True  # nothing to resume


def test_token_entropies_are_computed_in_fp32(dirs):
    """The IQR filter reads verl's per-token entropies; verl's unchunked path computes them in the logits' bf16
    (tests/test_verl_workers.py shows it ~0.1 off), the chunked one in fp32. The actor engine verl builds from the
    composed config (``ActorConfig.engine``, what ``engine_workers`` hands the FSDP engine) must take the latter."""
    from verl.utils.config import omega_conf_to_dataclass

    for method, N in (("mgrpo_iqr", 8), ("srt", 0)):
        _, _, cfg = trainer.validate_spec(spec_for(dirs, method=method, N=N))
        assert omega_conf_to_dataclass(cfg.actor_rollout_ref.actor).engine.entropy_from_logits_with_chunking is True


def test_the_yaml_itself_is_the_paper_default():
    # The defaults live in the shipped YAML (the Snakemake rule only passes overrides).
    text = (trainer.CONFIG_DIR / "mgrpo_paper.yaml").read_text()
    for line in ("train_batch_size: 8", "max_response_length: 3072", "kl_loss_coef: 0.005", "temperature: 1.1",
                 "n: 32", "momentum_rollouts: 8", "momentum: 0.99", "iqr_k: 0.75", "lr: 1.0e-06",
                 "lr_warmup_steps_ratio: 0.1", "path: Qwen/Qwen3-4B-Base"):
        assert line in text, line


def test_any_verl_option_overridable_and_settings_applied(dirs):
    settings = {"actor_rollout_ref.rollout.gpu_memory_utilization": "0.65", "trainer.project_name": "x y",
                "steps": "40", "n_gpus_per_node": "4", "save_every": "10", "eval_every": "20", "wandb": "false"}
    _, s, cfg = trainer.validate_spec(spec_for(dirs, settings=settings))
    assert cfg.actor_rollout_ref.rollout.gpu_memory_utilization == 0.65
    assert cfg.trainer.project_name == "x y"
    assert cfg.trainer.total_training_steps == 40 and s.steps == 40
    assert cfg.trainer.n_gpus_per_node == 4 and cfg.trainer.save_freq == 10 and cfg.trainer.test_freq == 20
    assert list(cfg.trainer.logger) == ["console"]


def test_steps_beyond_one_epoch_are_all_trained(dirs):
    # verl's fit loop runs while epoch < total_epochs and step <= total_training_steps (v1/trainer_base.py), and
    # an epoch has at least one step: total_epochs must not end the run before `steps` (MATH: 937 steps an epoch)
    _, _, cfg = trainer.validate_spec(spec_for(dirs, settings={"steps": "2000"}))
    assert cfg.trainer.total_training_steps == 2000
    for steps_per_epoch in (1, 937):
        assert cfg.trainer.total_epochs * steps_per_epoch >= 2000


@pytest.mark.parametrize("key,value", [
    ("trainer.default_local_dir", "/scratch/ckpt"),  # finalize and resume read WORK/checkpoints
    ("mgrpo.method", "srt"), ("mgrpo.momentum_rollouts", "0"),
    ("actor_rollout_ref.rollout.temperature", "0.6"),  # run.json would record --T
    ("trainer.save_freq", "10"),  # bypasses the eval_every/save_every check
    ("++trainer.save_freq", "10"),
])
def test_a_hydra_override_of_a_key_the_run_sets_is_refused_naming_it(dirs, key, value):
    with pytest.raises(ValueError, match=f"{key.lstrip('+')} set by the harness"):
        trainer.validate_spec(spec_for(dirs, settings={key: value}))


def test_overriding_a_parent_node_cannot_change_what_the_run_set(dirs):
    with pytest.raises(ValueError, match="actor_rollout_ref.rollout.n set by the harness"):
        trainer.validate_spec(spec_for(dirs, settings={"actor_rollout_ref.rollout": "{n: 3}"}))


def test_overrides_that_keep_the_runs_values_or_set_gpu_counts_are_accepted(dirs):
    settings = {"trainer.save_freq": "25", "trainer.test_freq": "25",  # the harness's own values
                "trainer.n_gpus_per_node": "4"}  # the workflow's GPU check reads this key too (analysis/plan.py)
    _, _, cfg = trainer.validate_spec(spec_for(dirs, settings=settings))
    assert cfg.trainer.save_freq == 25 and cfg.trainer.n_gpus_per_node == 4


@pytest.mark.parametrize("key,value,kind", [("data.max_prompt_length", "x", "an integer"),
                                             ("actor_rollout_ref.actor.optim.weight_decay", "heavy", "a number"),
                                             ("actor_rollout_ref.rollout.enforce_eager", "yes", "true or false")])
def test_an_override_of_the_wrong_type_is_refused_before_ray_naming_its_key(dirs, key, value, kind):
    with pytest.raises(ValueError, match=f"{key} = '{value}' is not {kind}"):
        trainer.validate_spec(spec_for(dirs, settings={key: value}))


def test_a_yaml_null_in_the_workflow_config_reaches_verl_as_none(dirs):
    from analysis.plan import settings_flags

    flags = settings_flags({"actor_rollout_ref.actor.optim.weight_decay": None, "vote_threshold": None})
    settings = dict(flag.split("=", 1) for flag in flags[1::2])
    _, s, cfg = trainer.validate_spec(spec_for(dirs, settings=settings))
    assert cfg.actor_rollout_ref.actor.optim.weight_decay is None and s.vote_threshold is None


def test_one_policy_rollout_is_refused_unless_the_momentum_rows_are_in_the_loss(dirs):
    with pytest.raises(ValueError, match="N \\(momentum rollouts\\) must be <= G - 2"):
        trainer.validate_spec(spec_for(dirs, G=2, N=1))
    trainer.validate_spec(spec_for(dirs, G=2, N=1, settings={"momentum_in_loss": "true"}))


def test_bad_override_names_its_key(dirs):
    with pytest.raises(ValueError, match="actor_rollout_ref.actor.optim.lrr"):
        trainer.validate_spec(spec_for(dirs, settings={"actor_rollout_ref.actor.optim.lrr": "1e-5"}))
    # beside a key it extends, the misspelt one is the override named (Hydra's message contains both)
    with pytest.raises(ValueError, match=r"\(override 'actor_rollout_ref\.actor\.optim\.lrr=1e-5'\)"):
        trainer.validate_spec(spec_for(dirs, settings={"actor_rollout_ref.actor.optim.lr": "1e-6",
                                                       "actor_rollout_ref.actor.optim.lrr": "1e-5"}))


def test_the_workflows_check_composes_the_config_without_reading_a_file(tmp_path):
    absent = tmp_path / "absent"  # no base model, data or work folder: the workflow checks before any job
    spec = RunSpec(backend="verl", method="mgrpo", base_model=absent / "model", data=absent / "data",
                   out=absent / "run", work=absent / "work", G=32, temperature=1.1, seed=0, N=8,
                   settings={"actor_rollout_ref.actor.optim.lr": "1e-6"})
    trainer.check_run_config(spec)
    with pytest.raises(ValueError, match="optim.lr = 'fast' is not a number"):
        trainer.check_run_config(replace(spec, settings={"actor_rollout_ref.actor.optim.lr": "fast"}))
    with pytest.raises(ValueError, match="N \\(momentum rollouts\\) must be >= 1"):
        trainer.check_run_config(replace(spec, N=0))
    assert not absent.exists()


def test_spelling_out_a_default_setting_leaves_the_work_folders_record_as_it_was(dirs):
    # the work folder's record (mgrpo.work_stamp) compares resolved settings: save_every's default is 25
    assert trainer.resolved_settings(spec_for(dirs)) == trainer.resolved_settings(
        spec_for(dirs, settings={"save_every": "25"}))
    assert trainer.resolved_settings(spec_for(dirs)) != trainer.resolved_settings(
        spec_for(dirs, settings={"save_every": "5", "eval_every": "5"}))


def test_bad_setting_lists_known_ones(dirs):
    with pytest.raises(ValueError, match="'stepz'.*known settings: steps"):
        trainer.validate_spec(spec_for(dirs, settings={"stepz": "3"}))
    with pytest.raises(ValueError, match="eval_every"):
        trainer.validate_spec(spec_for(dirs, settings={"save_every": "10", "eval_every": "15"}))


def test_validation_before_ray(dirs, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    with pytest.raises(UnknownMethodError, match="registered methods"):
        trainer.validate_spec(spec_for(dirs, method="no_such_method"))
    with pytest.raises(ValueError, match="N .*must be >= 1"):
        trainer.validate_spec(spec_for(dirs, N=0))
    with pytest.raises(ValueError, match="N .*must be 0"):
        trainer.validate_spec(spec_for(dirs, method="srt", N=8))
    with pytest.raises(ValueError, match="temperature T must be a finite number > 0"):
        trainer.validate_spec(spec_for(dirs, temperature=float("inf")))
    with pytest.raises(FileNotFoundError, match="base model directory not found"):
        trainer.validate_spec(spec_for(dirs, base_model=dirs[0] / "missing"))
    (dirs[2] / "test.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="test.parquet"):
        trainer.validate_spec(spec_for(dirs))


HINT = "prepare it with `mgrpo verl-prepare-data`"


def _drop(*columns):
    return lambda path: pd.read_parquet(path).drop(columns=list(columns)).to_parquet(path)


@pytest.mark.parametrize("name, spoil, expected", [
    ("model/config.json", lambda path: path.write_text("{"),
     "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("model/config.json", lambda path: path.write_text("[]"), "not a JSON object"),
    ("model/config.json", lambda path: path.write_text(json.dumps({"vocab_size": 64})),
     "no 'model_type' (not an HF model config)"),
    ("data/train.parquet", lambda path: path.write_bytes(b""),
     f"not a parquet file (Parquet file size is 0 bytes); {HINT}"),
    ("data/test.parquet", lambda path: path.write_text("problem,solution\n"),
     "not a parquet file (Parquet magic bytes not found in footer. Either the file is corrupted or this is not a "
     f"parquet file.); {HINT}"),
    ("data/train.parquet", _drop("mgrpo_gold"), f"no column mgrpo_gold; {HINT}"),
    ("data/test.parquet", _drop("prompt", "reward_model"), f"no column prompt, reward_model; {HINT}"),
    ("data/train.parquet", lambda path: pd.read_parquet(path).iloc[:0].to_parquet(path), "no rows"),
])
def test_bad_input_contents_are_refused_before_ray_naming_the_file(dirs, monkeypatch, name, spoil, expected):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    path = dirs[0] / name
    spoil(path)
    with pytest.raises(ValueError) as err:
        trainer.validate_spec(spec_for(dirs))
    assert str(err.value) == f"{path}: {expected}"


def test_train_refuses_bad_input_without_starting_ray(dirs, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    with pytest.raises(ValueError, match="lrr"):
        trainer.train(spec_for(dirs, settings={"actor_rollout_ref.actor.optim.lrr": "1"}))


def test_verl_rejects_inconsistent_batch_sizes(dirs):
    # 8 prompts x 32 rollouts do not split over 3 GPUs: verl's own validation says so before Ray starts
    with pytest.raises(ValueError, match="validate_config"):
        trainer.validate_spec(spec_for(dirs, settings={"n_gpus_per_node": "3"}))


def test_resume_disables_validation_before_training(dirs):
    ckpts = dirs[0] / "work" / "checkpoints"
    (ckpts / "global_step_5" / "actor").mkdir(parents=True)
    (ckpts / "latest_checkpointed_iteration.txt").write_text("5")
    _, _, cfg = trainer.validate_spec(spec_for(dirs))
    assert cfg.trainer.val_before_train is False


def test_hydra_values_are_quoted_when_needed():
    own, hydra = trainer.split_settings({"steps": "3", "trainer.project_name": "a b", "+x.y": True})
    assert own == {"steps": "3"}
    assert hydra == ["trainer.project_name='a b'", "+x.y=true"]


@pytest.mark.parametrize("text", ["a\\b c", "C:\\x y\\", "it's here", "\\'", "x\\\\'y z", "{not a dict"[1:]])
def test_a_quoted_hydra_value_reads_back_as_written(text):
    # Hydra un-escapes a backslash only before a quote: doubling every one changed 'a\b c' into 'a\\b c'
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = trainer.split_settings({"trainer.experiment_name": text})[1]
    assert OverridesParser.create().parse_override(override).value() == text


def test_self_certainty_needs_the_unfused_fsdp_path(dirs):
    trainer.validate_spec(spec_for(dirs, method="intuitor", N=0))
    with pytest.raises(ValueError, match="use_fused_kernels"):
        trainer.validate_spec(spec_for(dirs, method="intuitor", N=0,
                                       settings={"actor_rollout_ref.model.use_fused_kernels": "true"}))
    # the swapped statistic also feeds the update's entropy bonus: it must be off, and named when it is not
    for key, value in (("actor_rollout_ref.actor.entropy_coeff", "0.001"),
                       ("actor_rollout_ref.actor.calculate_entropy", "true")):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            trainer.validate_spec(spec_for(dirs, method="intuitor", N=0, settings={key: value}))
    trainer.validate_spec(spec_for(dirs, method="mgrpo", settings={"actor_rollout_ref.actor.entropy_coeff": "0.001"}))


def test_a_dropped_in_reward_reading_self_certainty_gets_the_same_checks(dirs, monkeypatch):
    # the statistic is chosen by the reward's declaration (register_reward), not by the name "self_certainty"
    from mgrpo.core import methods

    monkeypatch.setattr(methods, "_REWARDS", dict(methods._REWARDS))
    monkeypatch.setattr(methods, "_REWARD_STATISTIC", dict(methods._REWARD_STATISTIC))
    monkeypatch.setattr(methods, "_METHODS", dict(methods._METHODS))
    methods.register_reward("certainty_squared_test", statistic="self_certainty")(
        lambda ctx: np.asarray(ctx.self_certainties) ** 2)
    methods.register_method(methods.Method("certainty_squared_test", reward="certainty_squared_test"))
    with pytest.raises(ValueError, match="use_fused_kernels"):
        trainer.validate_spec(spec_for(dirs, method="certainty_squared_test", N=0,
                                       settings={"actor_rollout_ref.model.use_fused_kernels": "true"}))


def test_momentum_needs_the_colocated_weight_path(dirs):
    key = "actor_rollout_ref.rollout.checkpoint_engine.backend"
    with pytest.raises(ValueError, match=r"checkpoint_engine\.backend='nccl' \(needs 'naive'\)"):
        trainer.validate_spec(spec_for(dirs, method="mgrpo", settings={key: "nccl"}))
    trainer.validate_spec(spec_for(dirs, method="srt", N=0, settings={key: "nccl"}))  # no momentum push to make


def test_momentum_refuses_verls_rollout_skip(dirs):
    # a replayed policy batch is never submitted, so no momentum rollouts would be made for it
    key = "skip.rollout_tq.enable"
    with pytest.raises(ValueError, match=r"skip\.rollout_tq\.enable=True \(needs False\)"):
        trainer.validate_spec(spec_for(dirs, method="mgrpo", settings={key: "true"}))
    trainer.validate_spec(spec_for(dirs, method="srt", N=0, settings={key: "true"}))


@pytest.mark.parametrize("key, value, shown", [
    ("actor_rollout_ref.actor.checkpoint.async_save", "true", "async_save=True (needs False)"),
    ("actor_rollout_ref.actor.checkpoint.save_contents", "[optimizer,extra]", "save_contents=False (needs True)"),
    ("trainer.max_actor_ckpt_to_keep", "2", "max_actor_ckpt_to_keep=2 (needs None)"),
    ("trainer.del_local_ckpt_after_load", "true", "del_local_ckpt_after_load=True (needs False)"),
    ("trainer.resume_mode", "disable", "resume_mode='disable' (needs 'auto')"),
    ("trainer.resume_from_path", "/elsewhere/global_step_5", "resume_from_path='/elsewhere/global_step_5'"),
    ("algorithm.rollout_correction.bypass_mode", "true", "bypass_mode=True (needs False)"),
    ("algorithm.rollout_correction.rollout_is", "token", "rollout_is='token' (needs None)"),
    ("algorithm.rollout_correction.rollout_rs", "seq_mean_k1", "rollout_rs='seq_mean_k1' (needs None)"),
])
def test_overrides_that_would_break_resume_best_or_the_stage_are_refused_before_ray(dirs, key, value, shown):
    # e.g. async saves never write latest_checkpointed_iteration.txt: a run would train to the end, then find no
    # checkpoint to convert; verl's own pruning would delete best/'s step
    for method, N in (("srt", 0), ("mgrpo", 8)):
        with pytest.raises(ValueError, match=re.escape(shown)):
            trainer.validate_spec(spec_for(dirs, method=method, N=N, settings={key: value}))


def test_momentum_refuses_group_filtering(dirs):
    # DAPO's group filtering may sample a prompt submitted in an earlier step, whose momentum rollouts are gone
    key = "algorithm.filter_groups.enable"
    with pytest.raises(ValueError, match=r"filter_groups\.enable=True \(needs False\)"):
        trainer.validate_spec(spec_for(dirs, method="mgrpo", settings={key: "true"}))
    trainer.validate_spec(spec_for(dirs, method="srt", N=0, settings={key: "true"}))


def test_missing_verl_gives_install_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transfer_queue", None)  # import of it now raises ImportError
    with pytest.raises(SystemExit, match="verl backend not installed.*pip install"):
        trainer.require_verl()


def test_validation_without_verl_gives_install_hint(dirs, monkeypatch):
    """`mgrpo train --backend verl` validates (and composes verl's config) before it trains: without verl that must
    end with the install hint, not with Hydra's "Could not load 'ppo_trainer'"."""
    import sys

    for name in ("verl", "transfer_queue"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of either now raises ImportError
    with pytest.raises(SystemExit, match="verl backend not installed.*pip install"):
        trainer.validate_spec(spec_for(dirs))


def test_split_placement_brings_its_router_and_agent_loop(dirs):
    _, settings, cfg = trainer.validate_spec(spec_for(dirs, settings={"momentum_placement": "split"}))
    rollout = cfg.actor_rollout_ref.rollout
    assert cfg.mgrpo.momentum_placement == "split" and settings.momentum_placement == "split"
    assert rollout.router_config_path == str(trainer.SPLIT_ROUTER_FILE)
    assert rollout.agent.agent_loop_config_path == str(trainer.SPLIT_AGENT_LOOP_FILE)
    assert trainer.rollout_replicas(cfg) == 8  # 8 GPUs, TP = 1: k = 8 x 8 / 32 = 2 momentum replicas
    _, _, serial = trainer.validate_spec(spec_for(dirs))
    assert serial.mgrpo.momentum_placement == "serial" and serial.actor_rollout_ref.rollout.router_config_path is None


def test_split_placement_refuses_what_it_cannot_split_before_ray(dirs, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    split = {"momentum_placement": "split"}
    with pytest.raises(ValueError, match="'momentum_placement' must be one of serial, split \\(got 'both'\\)"):
        trainer.validate_spec(spec_for(dirs, settings={"momentum_placement": "both"}))
    with pytest.raises(ValueError, match="momentum_placement.*R = 1 replicas.*use 'serial'"):  # one GPU
        trainer.validate_spec(spec_for(dirs, settings={**split, "n_gpus_per_node": "1"}))
    tp2 = {**split, "actor_rollout_ref.rollout.tensor_model_parallel_size": "2"}  # 8 GPUs at TP = 2: R = 4
    trainer.validate_spec(spec_for(dirs, G=32, N=8, settings=tp2))  # 4 x 8 / 32 = 1 momentum replica
    with pytest.raises(ValueError, match="R = 4 replicas, N = 4, G = 32"):  # 4 x 4 / 32 is not a whole replica
        trainer.validate_spec(spec_for(dirs, G=32, N=4, settings=tp2))
    with pytest.raises(ValueError, match="needs momentum rollouts \\(N = 0\\)"):
        trainer.validate_spec(spec_for(dirs, method="srt", N=0, settings=split))
    key = "actor_rollout_ref.rollout.router_config_path"
    with pytest.raises(ValueError, match=key.replace(".", r"\.") + "='/elsewhere.yaml'"):
        trainer.validate_spec(spec_for(dirs, settings={**split, key: "/elsewhere.yaml"}))
    for key, value in (("actor_rollout_ref.model.lora_rank", "8"), ("actor_rollout_ref.model.lora.rank", "8"),
                       ("actor_rollout_ref.model.lora_adapter_path", "/adapter"),
                       ("actor_rollout_ref.rollout.full_determinism", "true")):
        with pytest.raises(ValueError, match=key.replace(".", r"\.") + "="):
            trainer.validate_spec(spec_for(dirs, settings={**split, key: value}))


# ---------------------------------------------------------------------------------------------- attention

def tiny_llama(directory):
    """A real HF model directory (tokenizer and weights), as verl's model config and FSDP engine load it."""
    import string

    from transformers import LlamaConfig, LlamaForCausalLM

    from mgrpo.toy.model import build_tokenizer

    tokenizer = build_tokenizer(characters=string.printable)
    tokenizer.save_pretrained(directory)
    LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, bos_token_id=tokenizer.bos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
                     ).save_pretrained(directory)
    return directory


def build_as_verls_engine(config):
    """The actor/reference model as verl 0.9.1's FSDP engine builds it: its HFModelConfig from the composed
    ``actor_rollout_ref.model``, then the auto class's ``from_pretrained`` with that hf_config."""
    from transformers import AutoModelForCausalLM

    from verl.utils.config import omega_conf_to_dataclass

    model_config = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    return AutoModelForCausalLM.from_pretrained(model_config.local_path, config=model_config.hf_config)


def test_attention_auto_builds_verls_model_without_flash_attn(dirs, monkeypatch):
    """On the H200 (2026-12-04) every method stopped in the engine's model build: verl asks transformers for
    flash_attention_2 unless told otherwise, and the GPU stack has no flash-attn. Here (no flash-attn either) the
    same build fails the same way with verl's default, and succeeds with what ``auto`` chooses."""
    monkeypatch.setattr(trainer, "flash_attention_available", lambda: False)
    model = tiny_llama(dirs[0] / "llama")
    _, settings, cfg = trainer.validate_spec(spec_for(dirs, method="srt", G=8, N=0, base_model=model))
    assert settings.attn_implementation == "auto"
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"
    assert build_as_verls_engine(cfg).config._attn_implementation == "sdpa"
    cfg.actor_rollout_ref.model.override_config.attn_implementation = "flash_attention_2"  # verl's own default
    with pytest.raises(ImportError, match="FlashAttention2"):
        build_as_verls_engine(cfg)


def test_attention_auto_takes_flash_attn_where_it_is_installed(dirs, monkeypatch):
    monkeypatch.setattr(trainer, "flash_attention_available", lambda: True)
    _, _, cfg = trainer.validate_spec(spec_for(dirs))
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "flash_attention_2"
    _, _, cfg = trainer.validate_spec(spec_for(dirs, settings={"attn_implementation": "sdpa"}))
    assert cfg.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"


def test_flash_attention_without_flash_attn_fails_before_ray_naming_the_key(dirs, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    monkeypatch.setattr(trainer, "flash_attention_available", lambda: False)
    for settings in ({"attn_implementation": "flash_attention_2"},
                     {"actor_rollout_ref.model.override_config.attn_implementation": "flash_attention_2"}):
        with pytest.raises(ValueError, match=r"override_config.attn_implementation=flash_attention_2 needs the "
                                             r"flash-attn package.*attn_implementation=sdpa"):
            trainer.train(spec_for(dirs, settings=settings))
    with pytest.raises(ValueError, match=r"setting 'attn_implementation' must be one of auto, .* \(got 'flash'\)"):
        trainer.validate_spec(spec_for(dirs, settings={"attn_implementation": "flash"}))


def test_vllm_samples_without_flashinfer_where_it_is_missing(monkeypatch):
    """vLLM 0.24 fails at engine start without FlashInfer unless told to use its own sampler (H200, 2026-12-04)."""
    import importlib.util

    from mgrpo.vllm_env import without_flashinfer_sampler

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "flashinfer" else real_find_spec(name, *a))
    environ = {}
    without_flashinfer_sampler(environ)
    assert environ == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    environ = {"VLLM_USE_FLASHINFER_SAMPLER": "1"}  # the user's choice stands (vLLM then names the problem itself)
    without_flashinfer_sampler(environ)
    assert environ == {"VLLM_USE_FLASHINFER_SAMPLER": "1"}

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "flashinfer" else None)
    environ = {}
    without_flashinfer_sampler(environ)
    assert environ == {}


def test_the_work_folder_record_holds_resolved_settings_so_a_spelt_out_default_is_the_same_run(dirs):
    plain = trainer.resolved_settings(spec_for(dirs, settings={"save_every": "5", "eval_every": "10"}))
    spelt = trainer.resolved_settings(spec_for(dirs, settings={"save_every": 5, "eval_every": "10",
                                                               "n_gpus_per_node": "8"}))  # 8: the default
    assert plain == spelt and plain["save_every"] == 5 and plain["n_gpus_per_node"] == 8
    assert plain["hydra_overrides"] == []
    tuned = trainer.resolved_settings(spec_for(dirs, settings={"actor_rollout_ref.actor.optim.lr": "2e-6"}))
    assert tuned["hydra_overrides"] == ["actor_rollout_ref.actor.optim.lr=2e-6"] and tuned != plain
