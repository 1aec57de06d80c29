"""The CPU trainer on a tiny model: schema, resume, determinism, momentum masking, NaN stop, bad input."""
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from mgrpo import core as mcore
from mgrpo.core import GroupScore, known_methods
from mgrpo.cpu import rollout as ro
from mgrpo.cpu import trainer
from mgrpo.run_spec import RunSpec
from mgrpo.toy.pretrain import pretrain
from mgrpo.toy.settings import ModelSize, PretrainSettings
from mgrpo.toy.task import TaskConfig, write_splits

FAST = {"steps": 4, "prompts_per_step": 2, "eval_every": 2, "save_every": 2, "eval_samples": 2,
        "max_new_tokens": 10, "eval_prompts": 8, "lr": 1e-2}
EXPECTED_KEYS = set(trainer.METRIC_KEYS)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_splits(root / "data", 0, TaskConfig(operands=3, pretrain_size=400, train_size=40, test_size=8))
    settings = PretrainSettings(max_steps=60, target_acc=None, select_rows=40, batch_size=32, lr=1e-2,
                                eval_samples=1,
                                size=ModelSize(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, max_position_embeddings=32))
    pretrain(root / "data", root / "model", seed=0, settings=settings, log=lambda _: None)
    return root


def cli_train_argv(toy, out, work, **settings):
    """`mgrpo train` arguments of make_spec's run (srt, G=4, seed 0, FAST settings)."""
    return ["train", "--backend", "cpu", "--method", "srt", "--base-model", str(toy / "model"),
            "--data", str(toy / "data"), "--out", str(out), "--work", str(work), "--G", "4", "--T", "1.0",
            *[x for k, v in {**FAST, **settings}.items() for x in ("--set", f"{k}={v}")]]


def make_spec(toy, tmp_path, method="srt", seed=0, name="run", G=4, N=None, **settings):
    return RunSpec.create(backend="cpu", method=method, G=G, N=N, base_model=toy / "model", data=toy / "data",
                          out=tmp_path / name / "out", work=tmp_path / name / "work", temperature=1.0,
                          seed=seed, settings={**FAST, **settings})


def read_metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in trainer.TIMING_FIELDS} for r in rows]


def test_metrics_schema_and_run_dir(toy, tmp_path):
    spec = make_spec(toy, tmp_path, method="mgrpo")
    (spec.out.parent / ".out.k1ll3d00").mkdir(parents=True)  # an earlier start's temp, killed while writing out/
    out = trainer.train(spec)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out", "work"]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    for r in rows:
        evaluated = r["step"] in (0, 2, 4)
        assert set(r) == EXPECTED_KEYS | ({"val_acc", "val_acc_greedy"} if evaluated else set())
    for r in rows[1:]:
        for key in ("agreement", "filtered_frac", "pseudo_label_acc", "rollout_acc", "momentum_agreement",
                    "val_acc", "val_acc_greedy"):
            assert r.get(key, 0.0) is not None and 0.0 <= r.get(key, 0.0) <= 1.0, key
        assert r["filtered_frac"] == 0.0  # mgrpo has no filter
        assert r["filtered_acc"] is None  # so there are no dropped rollouts to score
        assert r["entropy"] >= 0 and r["kl"] >= 0 and r["lr"] == pytest.approx(1e-2)
        assert r["rollouts_per_s"] == pytest.approx(2 * 4 / r["step_seconds"])  # prompts x G / seconds
        assert np.isfinite(r["loss"]) and r["grad_norm"] >= 0
    run = json.loads((out / "run.json").read_text())
    assert run["spec"]["method"] == "mgrpo" and run["spec"]["N"] == 1 and run["settings"]["steps"] == 4
    assert run["timing_fields"] == ["step_seconds", "rollouts_per_s"]
    trained = [(r["step"], r["val_acc"]) for r in rows if "val_acc" in r and r["step"] > 0]  # steps 2 and 4
    best_step, best_acc = min(trained, key=lambda point: (-point[1], point[0]))
    assert run["best"] == {"step": best_step, "val_acc": best_acc}
    for sub in ("final", "best"):
        assert AutoModelForCausalLM.from_pretrained(out / sub).config.hidden_size == 16
        assert (out / sub / "tokenizer.json").is_file()


def test_best_is_a_trained_checkpoint_even_when_training_only_lowers_accuracy(toy, tmp_path):
    # lr 3 wrecks the model in one step: the base model (step 0) has the highest val_acc, yet best/ must be a
    # trained step, as on verl, so that "best" and "the base model" are never the same checkpoint
    out = trainer.train(make_spec(toy, tmp_path, lr=3.0))
    vals = {r["step"]: r["val_acc"] for r in read_metrics(out) if "val_acc" in r}
    assert vals[0] > max(vals[2], vals[4])
    best = json.loads((out / "run.json").read_text())["best"]
    assert best["step"] == (2 if vals[2] >= vals[4] else 4) and best["val_acc"] == max(vals[2], vals[4])


def copy_data(toy, tmp_path, drop=(), unlabel_train=False):
    data = tmp_path / "data"
    data.mkdir()
    for path in (toy / "data").iterdir():
        if path.name in drop:
            continue
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if unlabel_train and path.name == "train.jsonl":
            rows = [{k: v for k, v in r.items() if k != "answer"} for r in rows]
        (data / path.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def test_the_test_split_takes_no_part_in_training_or_in_choosing_best(toy, tmp_path):
    # validation (the curve and best/) reads val.jsonl only: without test.jsonl the run is the same run
    reference = trainer.train(make_spec(toy, tmp_path, method="mgrpo", name="with_test"))
    spec = replace(make_spec(toy, tmp_path, method="mgrpo", name="without_test"),
                   data=copy_data(toy, tmp_path, drop=("test.jsonl",)))
    alone = trainer.train(spec)
    assert without_timing(read_metrics(alone)) == without_timing(read_metrics(reference))
    best = [json.loads((run / "run.json").read_text())["best"] for run in (reference, alone)]
    assert best[0] == best[1]


def test_unlabelled_training_prompts_train_and_log_no_label_diagnostics(toy, tmp_path):
    spec = replace(make_spec(toy, tmp_path, method="srt"), data=copy_data(toy, tmp_path, unlabel_train=True))
    rows = read_metrics(trainer.train(spec))
    assert all(r["pseudo_label_acc"] is None and r["rollout_acc"] is None for r in rows[1:])
    assert all(r["agreement"] is not None for r in rows[1:])
    with pytest.raises(ValueError, match=r"'ground_truth' rewards with the labels, but .*train.jsonl line 1"):
        trainer.train(replace(spec, method="ground_truth", out=tmp_path / "gt" / "out", work=tmp_path / "gt" / "w"))


def test_white_space_around_a_training_label_changes_no_metric(toy, tmp_path):
    # " 7 " and "7" are one label everywhere else (is_correct strips it, score_group's `same` ignores white space,
    # the evaluation strips it): the ground_truth reward and pseudo_label_acc already read them alike, and
    # rollout_acc, the share of policy rollouts whose answer is the label, must too
    data = tmp_path / "padded"
    data.mkdir()
    for path in (toy / "data").iterdir():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        if path.name == "train.jsonl":
            rows = [{**r, "answer": f" {r['answer']} "} for r in rows]
        (data / path.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = read_metrics(trainer.train(make_spec(toy, tmp_path, method="ground_truth", name="plain")))
    padded = read_metrics(trainer.train(replace(make_spec(toy, tmp_path, method="ground_truth", name="padded"),
                                                data=data)))
    assert any(r["rollout_acc"] for r in plain[1:])  # some rollout is right, so the comparison can fail
    assert without_timing(padded) == without_timing(plain)


def test_data_without_a_val_split_is_named(toy, tmp_path):
    spec = replace(make_spec(toy, tmp_path), data=copy_data(toy, tmp_path, drop=("val.jsonl",)))
    with pytest.raises(FileNotFoundError, match=r"val.jsonl .*rerun `mgrpo toy-data`"):
        trainer.train(spec)


def test_srt_has_no_momentum_metrics(toy, tmp_path):
    rows = read_metrics(trainer.train(make_spec(toy, tmp_path, method="srt", steps=2)))
    assert all(r["momentum_agreement"] is None for r in rows)


def test_same_seed_same_metrics_except_timing(toy, tmp_path):
    a = read_metrics(trainer.train(make_spec(toy, tmp_path, method="mgrpo_iqr", name="a")))
    b = read_metrics(trainer.train(make_spec(toy, tmp_path, method="mgrpo_iqr", name="b")))
    c = read_metrics(trainer.train(make_spec(toy, tmp_path, method="mgrpo_iqr", name="c", seed=1)))
    assert without_timing(a) == without_timing(b)
    assert without_timing(a) != without_timing(c)
    assert [r["step_seconds"] for r in a[1:]] != [r["step_seconds"] for r in b[1:]]  # timing is really excluded


class Killed(Exception):
    pass


def test_resume_after_kill_gives_every_step_once_and_same_metrics(toy, tmp_path, monkeypatch):
    reference = read_metrics(trainer.train(make_spec(toy, tmp_path, method="mgrpo", name="ref", steps=6)))

    calls = {"n": 0}
    real_loss = mcore.policy_loss

    def dies_in_step_6(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # step 5's metrics line is written, its checkpoint (every 2) is not
            raise Killed()
        return real_loss(*args, **kwargs)

    spec = make_spec(toy, tmp_path, method="mgrpo", name="killed", steps=6)
    monkeypatch.setattr(mcore, "policy_loss", dies_in_step_6)
    with pytest.raises(Killed):
        trainer.train(spec)
    monkeypatch.setattr(mcore, "policy_loss", real_loss)
    assert [json.loads(line)["step"] for line in (spec.work / "metrics.jsonl").read_text().splitlines()] \
        == [0, 1, 2, 3, 4, 5]
    assert not spec.out.exists()  # outputs appear only at the end
    with open(spec.work / "metrics.jsonl", "a") as log:  # and a kill in mid-append leaves a row cut short
        log.write('{"step": 6, "rewa')

    resumed = read_metrics(trainer.train(spec))
    assert [r["step"] for r in resumed] == [0, 1, 2, 3, 4, 5, 6]
    assert without_timing(resumed) == without_timing(reference)


def test_resume_refuses_other_arguments(toy, tmp_path):
    spec = make_spec(toy, tmp_path, name="x", steps=2)
    trainer.train(spec)
    with pytest.raises(ValueError, match="different arguments.*lr|different arguments.*settings"):
        trainer.train(replace(spec, settings={**spec.settings, "lr": 1e-3}))


def test_resume_takes_a_checkpoint_whose_momentum_or_k_the_method_does_not_use(toy, tmp_path):
    # The workflow once passed training.momentum to every method: an SRT run checkpointed with m = 0.9 is resumed
    # with the default 0.99 that it gets now. Neither enters an SRT run; the checkpoint is the same run's.
    spec = make_spec(toy, tmp_path, name="m", steps=2)
    first = read_metrics(trainer.train(replace(spec, momentum=0.9, iqr_k=1.5)))
    again = read_metrics(trainer.train(replace(spec, out=tmp_path / "m" / "out2")))
    assert without_timing(again) == without_timing(first)
    mgrpo = make_spec(toy, tmp_path, method="mgrpo", name="mg", steps=2)
    trainer.train(replace(mgrpo, momentum=0.9))
    with pytest.raises(ValueError, match=r"different arguments \(momentum\)"):  # a momentum method's m: another run
        trainer.train(replace(mgrpo, out=tmp_path / "mg" / "out2"))


def test_momentum_rollouts_never_enter_the_loss(toy, tmp_path, monkeypatch):
    sampled_by = {}  # id(rollouts) -> (model that sampled them, number of rows)
    forwarded = []  # (model, id(rollouts), grad enabled) for every full forward over rollouts
    alive = []
    real_sample, real_logits = ro.sample, ro.response_logits

    def spy_sample(model, prompts, **kwargs):
        result = real_sample(model, prompts, **kwargs)
        sampled_by[id(result)] = (model, len(prompts))
        alive.append(result)  # ids stay unique while the objects live
        return result

    def spy_logits(model, rollouts, temperature):
        forwarded.append((model, id(rollouts), torch.is_grad_enabled()))
        return real_logits(model, rollouts, temperature)

    monkeypatch.setattr(ro, "sample", spy_sample)
    monkeypatch.setattr(ro, "response_logits", spy_logits)
    trainer.train(make_spec(toy, tmp_path, method="mgrpo_iqr", G=4, N=2, steps=2, eval_every=100))

    training_samples = {k: v for k, v in sampled_by.items() if v[1] == 2 * 2}  # prompts_per_step x (M or N)
    samplers = {id(m) for m, _ in training_samples.values()}
    assert len(samplers) == 2  # policy and momentum model both sampled, as separate models
    with_grad = [(m, rid) for m, rid, grad in forwarded if grad]
    assert len(with_grad) == 2  # one loss forward per step
    policy_ids = {id(m) for m, _ in with_grad}
    assert len(policy_ids) == 1
    for model, rid in with_grad:
        assert id(sampled_by[rid][0]) == id(model)  # the loss only sees rollouts the policy sampled
    momentum_rollouts = [rid for rid, (m, _) in training_samples.items() if id(m) not in policy_ids]
    assert momentum_rollouts and not set(momentum_rollouts) & {rid for _, rid in with_grad}
    # they are forwarded only without gradient, by the policy, for the entropies the IQR filter compares
    # (plain M-GRPO reads no momentum statistics and skips this forward)
    no_grad = [(m, rid) for m, rid, grad in forwarded if not grad and rid in momentum_rollouts]
    assert len(no_grad) == 2 and {id(m) for m, _ in no_grad} == policy_ids


def test_the_loss_sees_exactly_the_kept_policy_rollouts_with_their_group_advantages(toy, tmp_path, monkeypatch):
    """End to end: the rows policy_loss is given carry score_group's advantages, and a policy rollout the IQR filter
    dropped (like every momentum rollout) has no token in the loss mask."""
    scored, losses = [], []
    real_score, real_loss = mcore.score_group, mcore.policy_loss

    calls = []

    def spy_score(*args, **kwargs):
        calls.append((args, kwargs))
        scored.append(real_score(*args, **kwargs))
        return scored[-1]

    def spy_loss(logp, old_logp, advantages, mask, **kwargs):
        losses.append((advantages.clone(), mask.clone()))
        return real_loss(logp, old_logp, advantages, mask, **kwargs)

    monkeypatch.setattr(mcore, "score_group", spy_score)
    monkeypatch.setattr(mcore, "policy_loss", spy_loss)
    spec = replace(make_spec(toy, tmp_path, method="mgrpo_iqr", G=8, N=2, steps=1, prompts_per_step=3,
                             eval_every=100), iqr_k=0.0)  # k = 0 drops every rollout below Q1
    out = trainer.train(spec)
    (advantages, mask), = losses
    M = 6
    assert len(scored) == 3 and mask.shape[0] == 3 * M
    dropped_policy_rows = 0
    for i, score in enumerate(scored):
        rows = slice(i * M, (i + 1) * M)
        assert advantages[rows].tolist() == pytest.approx(score.advantages[:M].tolist())
        assert ((mask[rows].sum(dim=1) > 0).tolist()) == score.in_loss[:M].tolist()
        dropped_policy_rows += int((~score.kept[:M]).sum())
        in_loss = score.in_loss[:M]
        if in_loss.sum() >= 2:  # GRPO over the kept policy rollouts only: mean 0, unbiased std 1 (eps aside)
            kept_advantages = score.advantages[:M][in_loss]
            assert abs(kept_advantages.mean()) < 1e-9
            assert kept_advantages.std(ddof=1) == pytest.approx(1.0, abs=1e-4) or not kept_advantages.any()
    assert dropped_policy_rows  # the filter dropped a policy rollout, so the mask check above could fail
    # filtered_acc: the dropped rollouts' answers (as score_group was given them) against each prompt's gold
    dropped = [float(answer is not None and answer.strip() == kwargs["gold"].strip())
               for (args, kwargs), score in zip(calls, scored)
               for answer, kept in zip(args[1] if len(args) > 1 else kwargs["answers"], score.kept) if not kept]
    assert read_metrics(out)[1]["filtered_acc"] == pytest.approx(sum(dropped) / len(dropped))


def _score(in_loss, advantages):
    G = len(in_loss)
    return GroupScore(label="1", votes=1, n_voters=1, kept=np.ones(G, bool), in_loss=np.asarray(in_loss),
                      rewards=np.zeros(G), advantages=np.asarray(advantages, float), agreement=np.zeros(G),
                      label_correct=None)


def test_policy_loss_inputs_take_only_policy_rollouts():
    adv, in_loss = trainer.policy_loss_inputs(
        [_score([True, False, False], [0.5, 0.0, 0.0]), _score([True, True, False], [1.0, -1.0, 0.0])], M=2)
    assert adv.tolist() == [0.5, 0.0, 1.0, -1.0] and in_loss.tolist() == [True, False, True, True]
    with pytest.raises(RuntimeError, match="momentum rollout in the loss"):
        trainer.policy_loss_inputs([_score([True, False, True], [0.1, 0.0, -0.1])], M=2)


def test_momentum_model_is_the_ema_of_the_policy_after_each_update(toy, tmp_path):
    # theta_m starts as the base model theta_0; after one update theta_m = m * theta_0 + (1 - m) * theta_1
    m = 0.75
    spec = replace(make_spec(toy, tmp_path, method="mgrpo", N=1, name="ema", steps=1), momentum=m)
    trainer.train(spec)
    state = torch.load(spec.work / "step_000001" / "state.pt", weights_only=False)
    theta0 = AutoModelForCausalLM.from_pretrained(toy / "model").state_dict()
    moved = 0
    for name, theta1 in state["policy"].items():
        if not theta1.is_floating_point():
            continue
        expected = m * theta0[name].float() + (1 - m) * theta1.float()
        assert torch.allclose(state["momentum"][name].float(), expected, atol=1e-6), name
        moved += int(not torch.equal(theta1, theta0[name]))
    assert moved  # the update changed the policy, so the check above could fail


def nan_loss_at_step_3(monkeypatch):
    """The trainer's third loss (step 3) becomes NaN."""
    calls = {"n": 0}
    real_loss = mcore.policy_loss

    def nan_at_step_3(*args, **kwargs):
        calls["n"] += 1
        loss, stats = real_loss(*args, **kwargs)
        return (loss * float("nan") if calls["n"] == 3 else loss), stats

    monkeypatch.setattr(mcore, "policy_loss", nan_at_step_3)


def test_nan_loss_stops_naming_the_step_and_keeps_last_checkpoint(toy, tmp_path, monkeypatch):
    nan_loss_at_step_3(monkeypatch)
    spec = make_spec(toy, tmp_path, name="nan")
    with pytest.raises(FloatingPointError, match="step 3"):
        trainer.train(spec)
    assert sorted(p.name for p in spec.work.glob("step_*")) == ["step_000002"]
    state = torch.load(spec.work / "step_000002" / "state.pt", weights_only=False)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["policy"].values())
    assert not spec.out.exists()


def test_a_diverging_cli_run_is_one_error_line_naming_the_step_and_the_checkpoint(toy, tmp_path, monkeypatch,
                                                                                 capsys):
    from mgrpo.cli import main

    nan_loss_at_step_3(monkeypatch)
    work = tmp_path / "work"
    assert main(cli_train_argv(toy, tmp_path / "out", work)) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"mgrpo train: error: non-finite loss (nan) at step 3; stopping "
        f"(last good checkpoint: {work / 'step_000002'})")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["config", "weights"])
def test_a_base_model_that_cannot_be_loaded_is_one_error_line_naming_it(toy, tmp_path, capsys, damage):
    # a config.json cut short (OSError) or truncated weights (SafetensorError) were a traceback, exit status 1
    from mgrpo.cli import main

    model = tmp_path / "model"
    shutil.copytree(toy / "model", model)
    name = "config.json" if damage == "config" else "model.safetensors"
    with open(model / name, "r+b") as handle:
        handle.truncate(10)
    argv = cli_train_argv(toy, tmp_path / "out", tmp_path / "work")
    argv[argv.index("--base-model") + 1] = str(model)
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"mgrpo train: error: base model {model} is not a loadable model: "), err
    assert not (tmp_path / "out").exists()


def test_a_truncated_checkpoint_is_named_with_what_to_delete(toy, tmp_path, capsys):
    from mgrpo.cli import main

    out, work = tmp_path / "out", tmp_path / "work"
    assert main(cli_train_argv(toy, out, work, steps=2, save_every=1)) == 0
    shutil.rmtree(out)  # so that the run goes back to its work folder
    with open(work / "step_000002" / "state.pt", "r+b") as state:
        state.truncate(100)
    capsys.readouterr()
    assert main(cli_train_argv(toy, out, work, steps=2, save_every=1)) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"mgrpo train: error: checkpoint {work / 'step_000002' / 'state.pt'} cannot be read ("), err
    assert err.endswith(f"); delete {work / 'step_000002'} to resume from step 1"), err
    shutil.rmtree(work / "step_000002")  # as told: the run then resumes from step 1
    assert main(cli_train_argv(toy, out, work, steps=2, save_every=1)) == 0
    assert [r["step"] for r in read_metrics(out)] == [0, 1, 2]


def test_a_resume_whose_metrics_log_was_emptied_is_refused_naming_the_file_and_step(toy, tmp_path, capsys):
    from mgrpo.cli import main

    assert main(cli_train_argv(toy, tmp_path / "out", tmp_path / "work")) == 0  # checkpoints at steps 2 and 4
    work, out = tmp_path / "copy" / "work", tmp_path / "copy" / "out"
    shutil.copytree(tmp_path / "work", work)
    (work / "metrics.jsonl").write_text("")
    shutil.rmtree(work / "step_000004")  # resumes from step 2, whose rows (and step 0's) are gone
    capsys.readouterr()
    assert main(cli_train_argv(toy, out, work)) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"mgrpo train: error: {work / 'metrics.jsonl'} has no row for step(s) 1, 2, though the checkpoint it resumes "
        f"from is at step 2: the log was emptied or cut since; restore it, or start afresh with another --work")
    assert (work / "metrics.jsonl").read_text() == "" and not out.exists()


@pytest.mark.parametrize("field, value, match", [
    ("G", 1, r"G \(rollouts per prompt\) must be an integer >= 2 \(got 1\)"),
    ("N", 0, r"N \(momentum rollouts\) must be >= 1 for method 'mgrpo' \(got 0\)"),
    ("momentum", 1.5, r"momentum m must be in \[0, 1\] \(got 1.5\)"),
    ("temperature", 0.0, r"temperature T must be a finite number > 0 \(got 0.0\)"),
    ("temperature", float("inf"), "temperature T must be a finite number"),  # inf samples uniformly
    ("iqr_k", float("nan"), "iqr_k must be a finite number")])  # NaN would drop every rollout
def test_bad_hyperparameters_fail_before_training(toy, tmp_path, field, value, match):
    spec = replace(make_spec(toy, tmp_path, method="mgrpo"), **{field: value})
    with pytest.raises(ValueError, match=match):
        trainer.train(spec)
    assert not spec.work.exists()


@pytest.mark.parametrize("settings, match", [
    ({"lr": "-1"}, "lr"), ({"steps": "0"}, "steps"), ({"nonsense": "1"}, "nonsense"),
    ({"prompts_per_step": "1000"}, "prompts_per_step")])
def test_bad_settings_fail_before_training(toy, tmp_path, settings, match):
    spec = make_spec(toy, tmp_path, **settings)
    with pytest.raises(ValueError, match=match):
        trainer.train(spec)
    assert not (spec.work / "metrics.jsonl").exists()


def test_every_registered_method_trains(toy, tmp_path):
    for method in known_methods():
        out = trainer.train(make_spec(toy, tmp_path, method=method, name=method, steps=1, eval_every=100))
        assert [r["step"] for r in read_metrics(out)] == [0, 1]


def test_sigkilled_cli_run_resumes_to_the_uninterrupted_metrics(toy, tmp_path):
    """A real `kill -9` of `mgrpo train` between checkpoints, then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    settings = {**FAST, "steps": 100, "save_every": 5, "eval_every": 50}

    def command(name):
        args = [sys.executable, "-m", "mgrpo", "train", "--backend", "cpu", "--method", "mgrpo",
                "--base-model", str(toy / "model"), "--data", str(toy / "data"), "--out", str(tmp_path / name / "out"),
                "--work", str(tmp_path / name / "work"), "--G", "4", "--T", "1.0", "--seed", "3"]
        return args + [x for k, v in settings.items() for x in ("--set", f"{k}={v}")]

    live = tmp_path / "killed" / "work" / "metrics.jsonl"
    process = subprocess.Popen(command("killed"), cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if live.is_file() and len(live.read_text().splitlines()) >= 13:  # past step 12, not at a checkpoint
            break
        time.sleep(0.01)
    if process.poll() is not None:  # only a clean, early finish is a reason to skip; a crash is a failure
        assert process.returncode == 0, f"mgrpo train exited with {process.returncode} before it could be killed"
        pytest.skip("the run finished before it could be killed")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "out").exists()

    subprocess.run(command("killed"), cwd=repo, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(command("whole"), cwd=repo, check=True, stdout=subprocess.DEVNULL)
    resumed = read_metrics(tmp_path / "killed" / "out")
    assert [r["step"] for r in resumed] == list(range(101))
    assert without_timing(resumed) == without_timing(read_metrics(tmp_path / "whole" / "out"))


def test_the_cli_refuses_bad_input_before_it_creates_or_stamps_the_work_folder(toy, tmp_path, capsys):
    from mgrpo.cli import main

    work = tmp_path / "cli" / "work"
    argv = ["train", "--backend", "cpu", "--method", "srt", "--base-model", str(toy / "model"),
            "--data", str(toy / "data"), "--out", str(tmp_path / "cli" / "out"), "--work", str(work),
            "--G", "4", "--T", "1.0", "--seed", "0", "--set", "stepz=3"]
    assert main(argv) == 2
    assert "stepz" in capsys.readouterr().err
    assert not work.exists()  # no run_inputs.json or lock left behind by a run that never started


@pytest.mark.parametrize("change, message", [
    (["--seed", "-1"], r"seed must be an integer in [0, 2147483647] (got -1)"),
    (["--seed", str(2**40)], r"seed must be an integer in [0, 2147483647]"),
    (["--set", "eval_temperature=inf"], "setting 'eval_temperature' must be a finite number > 0 (got inf)"),
    # inf reached the sampler as "probability tensor contains inf/nan" or the loss as NaN, naming no setting
    (["--set", "weight_decay=inf"], "setting 'weight_decay' must be a finite number >= 0 (got inf)"),
    (["--set", "kl_coef=inf"], "setting 'kl_coef' must be a finite number >= 0 (got inf)"),
    (["--set", "clip=nan"], "setting 'clip' must be a finite number >= 0 (got nan)"),
    (["--set", "max_grad_norm=inf"], "setting 'max_grad_norm' must be a finite number >= 0 (got inf)"),
    (["--set", "lr=inf"], "setting 'lr' must be a finite number > 0 (got inf)"),
    (["--work", "FILE"], "work folder FILE is a file, not a folder"),
    (["--out", "FILE"], "output folder FILE is a file, not a folder"),
])
def test_the_cli_names_a_bad_seed_setting_or_folder_before_training(toy, tmp_path, capsys, change, message):
    from mgrpo.cli import main

    (tmp_path / "FILE").write_text("keep me")
    arguments = {"--out": str(tmp_path / "out"), "--work": str(tmp_path / "work"), "--seed": "0"}
    extra = []
    if change[0] in arguments:
        arguments[change[0]] = change[1].replace("FILE", str(tmp_path / "FILE"))
    else:
        extra = change
    argv = ["train", "--backend", "cpu", "--method", "srt", "--base-model", str(toy / "model"),
            "--data", str(toy / "data"), "--G", "4", "--T", "1.0",
            *[x for flag, value in arguments.items() for x in (flag, value)], *extra]
    assert main(argv) == 2
    assert message.replace("FILE", str(tmp_path / "FILE")) in capsys.readouterr().err
    assert (tmp_path / "FILE").read_text() == "keep me"
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_a_generation_budget_that_cuts_the_worked_solutions_is_refused_before_the_first_step(toy, tmp_path):
    # 3 operands: "8+2+9=" is worked as the 2 running sums mod 10, "0,9#9": 5 one-character tokens, 6 with <eos>;
    # with 5 new tokens no rollout could ever end in an answer: no reward, no vote, no learning
    spec = make_spec(toy, tmp_path, max_new_tokens=5)
    with pytest.raises(ValueError, match=r"worked solutions in .*train\.jsonl take up to 6 tokens with <eos>, more "
                                         r"than max_new_tokens=5: raise max_new_tokens \(--set max_new_tokens=N\)"):
        trainer.train(spec)
    assert not (spec.work / "metrics.jsonl").exists()  # refused before the first step
    out = trainer.train(make_spec(toy, tmp_path, name="enough", max_new_tokens=6, steps=1))  # exactly enough
    assert [r["step"] for r in read_metrics(out)] == [0, 1]


def test_a_reward_gets_only_the_statistic_it_declares_as_on_verl(monkeypatch):
    """A reward reading the statistic it did not declare would get None at verl's first step: the toy shows it."""
    from mgrpo.core import methods

    monkeypatch.setattr(methods, "_REWARDS", dict(methods._REWARDS))
    monkeypatch.setattr(methods, "_REWARD_STATISTIC", dict(methods._REWARD_STATISTIC))
    seen = {}
    for statistic in ("entropy", "self_certainty"):
        def record(ctx, statistic=statistic):
            seen[statistic] = (ctx.entropies, ctx.self_certainties)
            return np.zeros(len(ctx.answers))
        methods.register_reward(f"sees_{statistic}_test", statistic=statistic)(record)
        trainer.score_step(mcore.Method("m", reward=f"sees_{statistic}_test"), ["1", "2"], ["1"], [0.5, 0.7], [0.9],
                           [0.1, 0.2], [0.3], [None], M=2, N=1, k=0.75)
    assert seen["entropy"][0].tolist() == [0.5, 0.7, 0.9] and seen["entropy"][1] is None
    assert seen["self_certainty"][0] is None and seen["self_certainty"][1].tolist() == [0.1, 0.2, 0.3]
