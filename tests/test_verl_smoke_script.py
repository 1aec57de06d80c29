"""bench/gpu_smoke.py: its CPU-side pieces (model/data building, the summary against targets). Running it needs a GPU."""

import pytest

pytest.importorskip("verl")


@pytest.fixture(scope="module")
def smoke(bench_script):
    return bench_script("gpu_smoke")


def timing(steps, **extra):
    return [{"global_step": i + 1, "timing_s": {"step": s, **extra}, "log_prob_gaps": None}
            for i, s in enumerate(steps)]


def test_summary_checks_targets(smoke):
    results = {"srt": {"steps": timing([50.0, 10.0, 10.0, 10.0])},
               "mgrpo": {"steps": timing([60.0, 10.4, 10.5, 10.6], mgrpo_ema=0.05, mgrpo_momentum_swap=3.0,
                                          update_weights=2.0)}}
    summary = smoke.summarise(results, warmup=1)
    assert summary["step_s"] == {"srt": 10.0, "mgrpo": 10.5}
    assert summary["mgrpo_over_srt_step"] == pytest.approx(1.05)
    assert summary["ema_fraction_of_step"] == pytest.approx(0.05 / 10.5)
    assert summary["swap_over_sync"] == pytest.approx(1.5)
    assert summary["checks"] == {"mgrpo_over_srt_step": True, "ema_fraction_of_step": True, "swap_over_sync": True}
    slow = {"srt": results["srt"], "mgrpo": {"steps": timing([1, 12.0, 12.0], mgrpo_ema=0.5,
                                                              mgrpo_momentum_swap=5.0, update_weights=2.0)}}
    assert smoke.summarise(slow, warmup=1)["checks"] == {"mgrpo_over_srt_step": False,
                                                         "ema_fraction_of_step": False, "swap_over_sync": False}


def test_summary_lists_log_prob_gaps_per_step_for_momentum_methods(smoke):
    rows = timing([5.0, 5.0, 5.0])
    for row, kl in zip(rows, [0.001, 0.02, 0.05]):
        row["log_prob_gaps"] = {"momentum_kl_to_policy": kl, "policy_rollout_mismatch": 0.003}
    rows[1]["log_prob_gaps"] = None  # a step without the comparison (calculate_log_probs off)
    summary = smoke.summarise({"srt": {"steps": timing([4.0, 4.0, 4.0])}, "mgrpo": {"steps": rows}}, warmup=1)
    assert summary["log_prob_gaps"] == {"mgrpo": {"momentum_kl_to_policy": [0.001, None, 0.05],
                                                  "policy_rollout_mismatch": [0.003, None, 0.003]}}


def test_builds_tiny_model_and_data(smoke, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    model = smoke.build_tiny_model(tmp_path / "model")
    assert AutoConfig.from_pretrained(model).num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(model)
    assert tok.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], tokenize=False,
                                   add_generation_prompt=True).endswith("assistant: ")
    data = smoke.build_data(tmp_path / "data")
    assert (data / "train.parquet").is_file() and (data / "test.parquet").is_file()


def test_refuses_without_gpu(smoke, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would really run")
    assert smoke.main(["--out", str(tmp_path / "r.json")]) == 2


@pytest.mark.parametrize("method", ["srt", "mgrpo", "mgrpo_iqr", "intuitor"])
def test_smoke_arguments_pass_every_check_before_ray(smoke, tmp_path, method):
    """Each method's `mgrpo train` arguments, parsed by the real CLI, compose with verl's config and pass verl's own
    validation on one GPU: a bad key or batch arithmetic would otherwise surface only on the GPU host."""
    pytest.importorskip("hydra")
    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer

    model = smoke.build_tiny_model(tmp_path / "model")
    data = smoke.build_data(tmp_path / "data")
    args = build_parser().parse_args(smoke.train_argv(method, model, data, tmp_path / "runs", steps=3))
    _, settings, config = trainer.validate_spec(train_spec(args))
    assert config.trainer.n_gpus_per_node == 1 and config.actor_rollout_ref.rollout.n == 8
    assert config.actor_rollout_ref.rollout.enforce_eager is True
    assert config.actor_rollout_ref.rollout.agent.num_workers == 2
    assert config.mgrpo.momentum_rollouts == (2 if method.startswith("mgrpo") else 0)
    # the momentum check: rollout log-probs on, a learning rate that moves the tiny model, a frozen momentum model
    assert config.actor_rollout_ref.rollout.calculate_log_probs is True
    assert config.actor_rollout_ref.actor.optim.lr == pytest.approx(smoke.LR)
    assert config.mgrpo.momentum == (1.0 if method.startswith("mgrpo") else pytest.approx(0.99))
    assert settings.steps == 3


def test_preflight_names_each_module_that_does_not_import(smoke):
    failures = smoke.preflight(["json", "mgrpo_no_such_module", "mgrpo.core"])
    assert len(failures) == 1
    assert failures[0].startswith("mgrpo_no_such_module: ModuleNotFoundError") and "mgrpo_no_such_module" in failures[0]


def test_unknown_method_is_refused_before_anything_runs(smoke, tmp_path):
    from mgrpo.core import UnknownMethodError

    with pytest.raises(UnknownMethodError, match="no_such_method"):
        smoke.main(["--methods", "srt,no_such_method", "--out", str(tmp_path / "r.json"), "--root", str(tmp_path)])
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "model").exists()
