"""Checkpoint bookkeeping and conversion wiring (verl's FSDP model_merger) on a world-size-1 checkpoint."""
import json

import pytest
import torch

pytest.importorskip("verl")
from mgrpo.atomic import write_jsonl  # noqa: E402
from mgrpo.verl_backend import checkpoints as ckpt  # noqa: E402
from mgrpo.verl_backend import metrics as metrics_io  # noqa: E402


def test_steps_to_delete_keeps_latest_two_and_best():
    assert ckpt.steps_to_delete([25, 50, 75, 100], latest=100, best=25, keep_last=2) == [50]
    assert ckpt.steps_to_delete([25, 50, 75, 100], latest=100, best=100, keep_last=2) == [25, 50]
    # a directory above the tracker (an interrupted save) is never touched, nor counted as newest
    assert ckpt.steps_to_delete([25, 50, 75], latest=50, best=None, keep_last=1) == [25]
    with pytest.raises(ValueError):
        ckpt.steps_to_delete([1], latest=1, best=None, keep_last=0)


def test_best_step_is_highest_saved_val_acc_earliest_on_ties():
    assert ckpt.best_step({25: 0.4, 50: 0.6, 75: 0.6, 80: 0.9}, saved_steps=[25, 50, 75]) == 50
    assert ckpt.best_step({10: 0.5}, saved_steps=[25]) is None


def test_latest_complete_step_reads_verl_tracker(tmp_path):
    assert ckpt.latest_complete_step(tmp_path) is None
    (tmp_path / "global_step_50" / "actor").mkdir(parents=True)
    (tmp_path / "global_step_75" / "actor").mkdir(parents=True)
    (tmp_path / ckpt.TRACKER).write_text("50")
    assert ckpt.latest_complete_step(tmp_path) == 50
    assert ckpt.checkpoint_steps(tmp_path) == [50, 75]
    removed = ckpt.prune(tmp_path, best=None, keep_last=1)
    assert removed == [] and ckpt.checkpoint_steps(tmp_path) == [50, 75]


def test_an_emptied_tracker_is_rewritten_to_the_newest_complete_step(tmp_path):
    import torch

    for step in (25, 50, 75):
        (tmp_path / f"global_step_{step}" / "actor").mkdir(parents=True)
    torch.save({"sampler": 25}, tmp_path / "global_step_25" / "data.pt")
    torch.save({"sampler": 50}, tmp_path / "global_step_50" / "data.pt")
    (tmp_path / "global_step_50" / "data.pt").write_bytes(b"PK\x03")  # killed while verl wrote it
    # step 75: killed before data.pt; verl then truncated its tracker to write 75 and was killed again
    (tmp_path / ckpt.TRACKER).write_text("")
    with pytest.raises(ValueError, match="expected a step number"):
        ckpt.latest_complete_step(tmp_path)  # what every resume (and verl's own) ran into
    assert ckpt.repair_tracker(tmp_path) == 25
    assert (tmp_path / ckpt.TRACKER).read_text() == "25"
    assert ckpt.latest_complete_step(tmp_path) == 25
    assert ckpt.repair_tracker(tmp_path) is None  # a readable tracker is left alone


def test_a_tracker_with_no_complete_step_behind_it_is_an_error_naming_it(tmp_path):
    assert ckpt.repair_tracker(tmp_path) is None  # no tracker: a fresh run
    (tmp_path / "global_step_5" / "actor").mkdir(parents=True)
    (tmp_path / ckpt.TRACKER).write_text("\n")
    with pytest.raises(ValueError, match=f"{ckpt.TRACKER}.*no step directory beside it is complete"):
        ckpt.repair_tracker(tmp_path)


def _tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("trained_attention", [None, "flash_attention_2"])
def test_convert_to_hf_through_verl_model_merger(tmp_path, trained_attention):
    # verl's FSDP layout at world size 1: model_world_size_1_rank_0.pt (plain tensors), fsdp_config.json,
    # huggingface/ (config). The merger must give back exactly these weights in an HF directory.
    model = _tiny_model()
    actor = tmp_path / "global_step_3" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    model.config.architectures = ["LlamaForCausalLM"]  # as in the HF config verl saves beside the shards
    model.config.save_pretrained(actor / "huggingface")
    if trained_attention:  # verl writes the run's override_config into that config.json (workers/config/model.py)
        config_file = actor / "huggingface" / "config.json"
        config_file.write_text(json.dumps(json.loads(config_file.read_text())
                                          | {"attn_implementation": trained_attention}))
    from mgrpo.toy.model import build_tokenizer

    build_tokenizer().save_pretrained(actor / "huggingface")  # verl saves the tokenizer there too
    torch.save(model.state_dict(), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))

    target = ckpt.convert_to_hf(actor, tmp_path / "run" / "final")
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(target, dtype="auto").state_dict()
    for name, value in model.state_dict().items():
        # the merger stores the dtype verl chose (bf16 for fp32 shards): equal up to that cast
        assert torch.equal(loaded[name], value.to(loaded[name].dtype)), name
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()
    # loads on a machine without flash-attn (this one): the attention the run trained with is not carried over
    assert json.loads((target / "config.json").read_text()).get("attn_implementation") is None
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temp dir left
    with pytest.raises(FileNotFoundError, match="fsdp_config.json"):
        ckpt.convert_to_hf(tmp_path, tmp_path / "x")


def test_an_empty_shard_is_an_error_naming_the_checkpoint(tmp_path):
    actor = tmp_path / "global_step_3" / "actor"
    _write_actor_checkpoint(actor, _tiny_model())
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"")  # a copy cut short
    with pytest.raises(ValueError) as err:
        ckpt.convert_to_hf(actor, tmp_path / "run" / "final")
    assert str(err.value) == f"verl checkpoint {actor} cannot be converted: EOFError: Ran out of input"
    assert list((tmp_path / "run").iterdir()) == []  # no model and no temp folder left


def test_an_invalid_hf_config_is_an_error_naming_the_file(tmp_path, capsys):
    from mgrpo.cli import main

    actor = tmp_path / "global_step_3" / "actor"
    _write_actor_checkpoint(actor, _tiny_model())
    config = actor / "huggingface" / "config.json"
    config.write_text("{\n")
    assert main(["verl-convert", "--checkpoint", str(actor.parent), "--out", str(tmp_path / "hf")]) == 2
    assert capsys.readouterr().err == (f"mgrpo verl-convert: error: {config}: not valid JSON (Expecting property "
                                       f"name enclosed in double quotes: line 2 column 1 (char 2))\n")
    config.write_text("[]")
    with pytest.raises(ValueError) as err:
        ckpt.convert_to_hf(actor, tmp_path / "hf")
    assert str(err.value) == f"{config}: not a JSON object"
    assert not (tmp_path / "hf").exists() and [p.name for p in tmp_path.iterdir()] == ["global_step_3"]


def test_metrics_rows_follow_the_schema():
    verl_metrics = {"actor/kl_loss": 0.01, "actor/loss": 0.5, "actor/lr": 1e-6, "actor/grad_norm": 2.0,
                    "timing_s/step": 4.0, "val-core/math/acc/mean@1": 0.25, "val-core/math/acc/mean@4": 0.5}
    row = metrics_io.metrics_row(7, {"reward": 0.5, "momentum_agreement": None}, verl_metrics, rollouts=256)
    assert set(metrics_io.METRIC_KEYS) <= set(row)
    assert row["step"] == 7 and row["kl"] == 0.01 and row["loss"] == 0.5 and row["grad_norm"] == 2.0
    assert row["rollouts_per_s"] == 64.0 and row["val_acc"] == 0.5 and row["momentum_agreement"] is None
    # verl's own keys where the reward function returns no "acc" (ours: score and answer), as the H200 run logged
    # them (docs/gpu/2026-12-04-h200-steps/train-mgrpo.log); a reward of 0.75 on the test rows is 75 % correct
    logged = {"val-core/math/reward/mean@1": 0.75, "val-aux/math/score/mean@1": 0.75, "val-aux/num_turns/min": 2}
    assert metrics_io.metrics_row(0, {}, logged, rollouts=1)["val_acc"] == 0.75
    assert "val_acc" not in metrics_io.metrics_row(0, {}, {"val-aux/math/score/mean@1": 0.75}, rollouts=1)
    # two data sources: their mean (0.25 + 0.75) / 2, each at its largest n
    two = {"val-core/math/acc/mean@4": 0.25, "val-core/gsm/acc/mean@1": 0.1, "val-core/gsm/acc/mean@2": 0.75}
    assert metrics_io.metrics_row(0, {}, two, rollouts=1)["val_acc"] == pytest.approx(0.5)


def _write_actor_checkpoint(actor, model):
    from mgrpo.toy.model import build_tokenizer

    (actor / "huggingface").mkdir(parents=True)
    model.config.architectures = ["LlamaForCausalLM"]
    model.config.save_pretrained(actor / "huggingface")
    build_tokenizer().save_pretrained(actor / "huggingface")
    torch.save(model.state_dict(), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))


def test_convert_refuses_an_unrelated_folder_and_replaces_its_own_earlier_model(tmp_path):
    actor = tmp_path / "global_step_3" / "actor"
    _write_actor_checkpoint(actor, _tiny_model())
    out = tmp_path / "x"
    (out / "important").mkdir(parents=True)
    (out / "important" / "notes.txt").write_text("precious")
    with pytest.raises(ValueError, match=rf"output folder {out} is not empty and is not an earlier output of this "
                                         rf"command \(it has no config.json, \*\.safetensors\)"):
        ckpt.convert_to_hf(actor, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_step_3", "x"]
    assert (out / "important" / "notes.txt").read_text() == "precious"
    model = tmp_path / "model"
    ckpt.convert_to_hf(actor, model)
    (model / "stale.txt").write_text("from the last conversion")
    ckpt.convert_to_hf(actor, model)  # a rerun over its own earlier output replaces it
    assert not (model / "stale.txt").exists() and (model / "config.json").is_file()


def test_finalize_run_dir_converts_final_and_best(tmp_path):
    from mgrpo.core import get_method
    from mgrpo.run_spec import RunSpec
    from mgrpo.verl_backend.trainer import VerlSettings, finalize_run_dir
    from transformers import AutoModelForCausalLM

    work, out = tmp_path / "work", tmp_path / "runs" / "r1"
    root = work / "checkpoints"
    models = {}
    for step in (2, 4):
        models[step] = _tiny_model()
        with torch.no_grad():
            models[step].lm_head.weight.fill_(float(step))  # tells the two checkpoints apart
        _write_actor_checkpoint(root / f"global_step_{step}" / "actor", models[step])
    (root / ckpt.TRACKER).write_text("4")
    rows = [{"step": 0, "val_acc": 0.9}, {"step": 1}, {"step": 2, "val_acc": 0.5}, {"step": 3},
            {"step": 4, "val_acc": 0.4}]
    write_jsonl(work / "metrics.jsonl", rows)
    spec = RunSpec(backend="verl", method="srt", base_model=tmp_path, data=tmp_path, out=out, work=work, G=4,
                   temperature=1.0, seed=0, N=0)
    killed = out.parent / ".r1.x1y2z3w4"  # the temp of a start killed while converting (atomic_dir's name)
    (killed / "final").mkdir(parents=True)
    (out.parent / ".r10.a1b2c3d4").mkdir()  # another run's: not ours to remove
    finalize_run_dir(spec, VerlSettings(), get_method("srt"))
    assert sorted(p.name for p in out.iterdir()) == ["best", "final", "metrics.jsonl", "run.json"]
    assert sorted(p.name for p in out.parent.iterdir()) == [".r10.a1b2c3d4", "r1"]
    final = AutoModelForCausalLM.from_pretrained(out / "final").lm_head.weight
    best = AutoModelForCausalLM.from_pretrained(out / "best").lm_head.weight
    assert torch.all(final == 4.0) and torch.all(best == 2.0)  # best: step 2 (step 0 is the base model)
    run = json.loads((out / "run.json").read_text())
    assert run["backend"] == "verl" and run["best_step"] == 2 and run["final_step"] == 4
    assert run["spec"]["method"] == "srt" and run["versions"]["verl"] == "0.9.1"
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3, 4]
