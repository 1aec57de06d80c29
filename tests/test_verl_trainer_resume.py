"""Save and resume after preemption through verl 0.9.1's own ``PPOTrainer._save_checkpoint`` / ``_load_checkpoint``.

The trainer's overrides around them (the EMA saved with each step, the save deferred until the step's metrics row is
written, pruning to the newest two and the best, the momentum model and metrics.jsonl restored on resume) run with
one worker whose momentum methods are the real ones; the actor's own FSDP checkpoint is a file of its weights.
"""
import json
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("transfer_queue")

from omegaconf import OmegaConf  # noqa: E402

from mgrpo.jsonl import read_log  # noqa: E402
from mgrpo.verl_backend import metrics as metrics_io  # noqa: E402


class WorkerGroup:
    """verl's actor worker group with one rank: the real worker's momentum methods; the actor checkpoint a file."""

    def __init__(self, module):
        from mgrpo.verl_backend.workers import MGRPOActorRolloutRefWorker

        self.module = module
        self.worker = object.__new__(MGRPOActorRolloutRefWorker)
        self.worker.actor = SimpleNamespace(engine=SimpleNamespace(
            module=module, engine_config=SimpleNamespace(entropy_checkpointing=False)))

    def __getattr__(self, name):  # mgrpo_setup, mgrpo_ema_update, mgrpo_save_momentum, mgrpo_load_momentum
        if name.startswith("mgrpo_"):
            return getattr(self.worker, name)
        raise AttributeError(name)

    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        from pathlib import Path

        Path(local_path).mkdir(parents=True, exist_ok=True)
        torch.save(self.module.state_dict(), Path(local_path) / "model.pt")

    def load_checkpoint(self, local_path, del_local_after_load=False):
        from pathlib import Path

        self.module.load_state_dict(torch.load(Path(local_path) / "model.pt"))


def make_trainer(tmp_path, module):
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    trainer = object.__new__(MGRPOTrainer)  # no Ray: the driver's checkpoint logic and verl's own save/load
    trainer.config = OmegaConf.create({
        "trainer": {"default_local_dir": str(tmp_path / "ckpt"), "resume_mode": "auto", "default_hdfs_dir": None,
                    "del_local_ckpt_after_load": False, "max_actor_ckpt_to_keep": None},
        "actor_rollout_ref": {"actor": {"checkpoint": {}}}, "data": {"train_batch_size": 2}})
    trainer.actor_rollout_wg = WorkerGroup(module)
    trainer.use_critic, trainer.trainer_mode = False, "sync"
    trainer.train_dataloader = SimpleNamespace(state_dict=lambda: {"epoch": 0}, load_state_dict=lambda state: None)
    trainer.checkpoint_callback = SimpleNamespace(on_save=lambda **kwargs: None)
    trainer.momentum, trainer.N, trainer.G, trainer.token_statistic = 0.9, 1, 4, "entropy"
    trainer.split_placement = False
    trainer.metrics_path = tmp_path / "work" / "metrics.jsonl"
    trainer.steps_path = tmp_path / "work" / metrics_io.STEPS_FILE
    trainer.metrics_path.parent.mkdir(parents=True, exist_ok=True)
    trainer.ckpt_root = tmp_path / "ckpt"
    trainer._method_metrics, trainer._log_prob_gaps, trainer._save_pending = {}, None, False
    return trainer


def train_step(trainer, step, val_acc, save):
    """What one step leaves behind: an actor update, the EMA update after it, the step's row, a save if due."""
    trainer.global_steps = step
    with torch.no_grad():
        for p in trainer.actor_rollout_wg.module.parameters():
            p.add_(float(step))
    trainer.actor_rollout_wg.mgrpo_ema_update()
    if save:
        trainer._save_checkpoint()
    trainer._compute_metrics(None, {"val-core/math/reward/mean@1": val_acc}, {"step": 1.0}, step, 0)


def test_preempted_run_resumes_from_its_last_checkpoint_with_its_momentum_model(tmp_path, monkeypatch):
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    monkeypatch.setattr(PPOTrainer, "_compute_metrics", lambda self, *args: None)  # verl's own metrics: not needed
    torch.manual_seed(0)
    first = make_trainer(tmp_path, torch.nn.Linear(3, 2))
    first._load_checkpoint()  # nothing saved yet: a fresh start
    assert first.global_steps == 0 and first.metrics_path.read_text() == ""
    for step, val_acc in ((1, 0.5), (2, 0.7), (3, 0.6)):
        train_step(first, step, val_acc, save=True)
    ema_at_3 = [e.clone() for e in first.actor_rollout_wg.worker._mgrpo_ema]
    policy_at_3 = {k: v.clone() for k, v in first.actor_rollout_wg.module.state_dict().items()}
    train_step(first, 4, 0.9, save=False)  # preempted after step 4's row, before any later checkpoint

    root = tmp_path / "ckpt"
    assert (root / "latest_checkpointed_iteration.txt").read_text() == "3"
    # the per-step record times the save itself (verl's own save timer only sees it deferred)
    saves = [("mgrpo_save_checkpoint" in row["timing_s"]) for row in read_log(first.steps_path)]
    assert saves == [True, True, True, False]
    # newest two (2, 3) and the best saved (2: val_acc 0.7) are kept
    assert sorted(p.name for p in root.glob("global_step_*")) == ["global_step_2", "global_step_3"]
    assert json.loads((root / "mgrpo_best.json").read_text())["best_step"] == 2
    assert (root / "global_step_3" / "momentum" / "ema_rank_0.pt").is_file()

    torch.manual_seed(1)
    resumed = make_trainer(tmp_path, torch.nn.Linear(3, 2))  # the requeued job: a fresh process, other weights
    resumed._load_checkpoint()
    assert resumed.global_steps == 3
    assert all(torch.equal(v, policy_at_3[k]) for k, v in resumed.actor_rollout_wg.module.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(resumed.actor_rollout_wg.worker._mgrpo_ema, ema_at_3))
    assert [row["step"] for row in read_log(resumed.metrics_path)] == [1, 2, 3]  # step 4 is redone
    assert [row["step"] for row in read_log(resumed.steps_path)] == [1, 2, 3]
    assert resumed._val_by_step == {1: 0.5, 2: 0.7, 3: 0.6}


def test_a_checkpoint_without_its_momentum_model_is_refused_by_name(tmp_path, monkeypatch):
    import shutil

    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    monkeypatch.setattr(PPOTrainer, "_compute_metrics", lambda self, *args: None)
    trainer = make_trainer(tmp_path, torch.nn.Linear(3, 2))
    trainer._load_checkpoint()
    train_step(trainer, 1, 0.5, save=True)
    shutil.rmtree(tmp_path / "ckpt" / "global_step_1" / "momentum")
    with pytest.raises(FileNotFoundError, match=r"global_step_1 has no momentum/"):
        make_trainer(tmp_path, torch.nn.Linear(3, 2))._load_checkpoint()
