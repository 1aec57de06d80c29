"""The verl trainer extension (GPU only; runs inside the Ray task runner).

``MGRPOTrainer`` is verl 0.9.1's synchronous V1 trainer (``PPOTrainerSync``) plus the method's stages, registered
under ``trainer.v1.trainer_mode = mgrpo_sync``. Per step:

1. the policy writes M = G - N rollouts per prompt (verl's agent loop; ``__rollout_n__`` = M per prompt);
2. (momentum methods) N rollouts per prompt under the uid ``<uid>-momentum``, joining the batch before load
   balancing. ``mgrpo.momentum_placement = serial``: after the policy's rollouts the EMA weights are pushed into the
   same rollout engines through verl's ``update_weights`` (``mgrpo_sync_momentum_weights``), the momentum round is
   generated, the engines sleep. ``split``: the momentum replicas hold the EMA since the last weight sync
   (replica_split.py), and the momentum prompts are submitted with the policy's and generated at the same time;
3. verl's reward function extracts each rollout's answer (reward.py); verl's old-log-prob pass computes the
   actor's per-token entropy at the training temperature for every row (policy and momentum);
4. ``_compute_advantage`` is replaced by ``stages.score_dataproto``: ``mgrpo.core.score_group`` per prompt,
   advantages for kept policy rows, ``response_mask``/``loss_mask`` zeroed on every other row; with
   ``rollout.calculate_log_probs``, vLLM's log-probs are compared with the actor's per row kind
   (``stages.rollout_logprob_gaps``: was each row generated with the weights it should have been?);
5. verl's actor update (clip 0.2, KL loss to the reference), then the EMA update on local shards;
6. the end-of-step ``update_weights`` restores the (updated) policy in the rollout engine.

Checkpoints: verl's actor/dataloader checkpoint plus ``global_step_N/momentum`` (EMA shards); a step is saved
after its metrics row is written (so a resumed run never misses a row), and only the newest two and the best
checkpoint are kept. On a GPU this path has run for M-GRPO with the serial placement (one H200, 2026-12-04, 5 steps:
docs/gpu/2026-12-04-h200-steps/); SRT, Intuitor, M-GRPO+IQR and the split placement have not.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import ray
import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta

from mgrpo import core as mcore
from mgrpo.atomic import write_json, write_jsonl
from mgrpo.jsonl import append_row, truncate_log
from mgrpo.verl_backend import checkpoints as ckpt
from mgrpo.verl_backend import metrics as metrics_io
from mgrpo.verl_backend import replica_split, stages
from mgrpo.verl_backend.workers import MGRPOActorRolloutRefWorker
from verl.protocol import DataProto
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.utils import Role
from verl.trainer.ppo.v1.trainer_base import PPOTrainer, register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.debug import marked_timer
from verl.workers.utils.padding import response_to_nested


TRAINER_MODE = "mgrpo_sync"
KEEP_LAST_CHECKPOINTS = 2
# How often the driver looks for finished rollouts, ours and verl's replay buffer's (its default is 2 s, which rounds
# the generation of every step up to the next poll: seconds on a smoke-test step, and a bias between the methods).
POLL_SECONDS = 0.1


@register_trainer(TRAINER_MODE)
class MGRPOTrainer(PPOTrainerSync):
    def __init__(self, config):
        super().__init__(config)
        # verl compares trainer_mode with "sync" (replay buffer, checkpointed TransferQueue): this trainer is the
        # sync trainer plus stages, so it runs with sync semantics under its own registry name.
        self.trainer_mode = "sync"
        self.parameter_sync_step = 1
        self.replay_buffer = self._build_replay_buffer()

        options = config.mgrpo
        self.method = stages.configure_method(mcore.get_method(options.method), options.vote_threshold,
                                              bool(options.soft_reward), float(options.keep_fraction))
        self.G = int(config.actor_rollout_ref.rollout.n)
        self.N = int(options.momentum_rollouts)
        self.M = self.G - self.N
        mcore.validate_hyperparameters(self.method, self.G, self.N, float(options.momentum), float(options.iqr_k),
                                       bool(options.momentum_in_loss))
        self.momentum = float(options.momentum)
        self.iqr_k = float(options.iqr_k)
        self.keep_fraction = float(options.keep_fraction)
        self.momentum_in_loss = bool(options.momentum_in_loss)
        self.split_placement = self.N > 0 and options.get("momentum_placement", "serial") == "split"
        self.token_statistic = mcore.reward_statistic(self.method.reward)
        self.metrics_path = Path(options.metrics_path)
        self.steps_path = self.metrics_path.parent / metrics_io.STEPS_FILE
        self.compare_rollout_log_probs = bool(config.actor_rollout_ref.rollout.calculate_log_probs)
        self.ckpt_root = Path(config.trainer.default_local_dir)
        self._submitted: list = []  # prompt batches submitted this step (momentum rollouts reuse them)
        self._momentum_running: list[str] = []  # split placement: momentum groups submitted this step
        self._method_metrics: dict = {}
        self._log_prob_gaps: dict | None = None
        self._momentum_failed_groups = 0
        self._val_by_step: dict[int, float] = {}
        self._save_pending = False
        self._vocab_size = None

    # ------------------------------------------------------------------ set-up
    def _build_replay_buffer(self):
        buffer = super()._build_replay_buffer()
        buffer.poll_interval = POLL_SECONDS
        return buffer

    def _init_resource_pool_mgr(self):
        super()._init_resource_pool_mgr()
        for role in list(self.role_worker_mapping):
            if role in (Role.ActorRollout, Role.ActorRolloutRef, Role.Actor):
                self.role_worker_mapping[role] = ray.remote(MGRPOActorRolloutRefWorker)

    def _momentum_ranks(self) -> list[int] | None:
        """Split placement: tell verl's router (our plugin) and the workers which replicas hold the EMA."""
        if not self.split_placement:
            return None
        replicas = len(self.llm_server_manager.get_replicas())
        count = replica_split.momentum_replica_count(replicas, self.G, self.N)
        router = self.llm_server_manager.global_load_balancer
        if not hasattr(router, "set_momentum_servers"):
            raise RuntimeError("momentum_placement 'split' needs actor_rollout_ref.rollout.router_config_path = "
                               "mgrpo/verl_backend/config/momentum_router.yaml (verl built another router)")
        ray.get(router.set_momentum_servers.remote(count))
        return replica_split.momentum_ranks(self.actor_rollout_wg.world_size, replicas, count)

    def _load_checkpoint(self):
        # before verl's first weight sync (on_init_end), which already gives the momentum replicas the EMA
        self.actor_rollout_wg.mgrpo_setup(momentum=self.momentum, use_ema=self.N > 0,
                                          token_statistic=self.token_statistic, momentum_ranks=self._momentum_ranks())
        super()._load_checkpoint()
        if self.global_steps > 0:
            step_dir = self.ckpt_root / f"global_step_{self.global_steps}"
            if self.N:
                if not (step_dir / "momentum").is_dir():
                    raise FileNotFoundError(f"checkpoint {step_dir} has no momentum/ (EMA) directory")
                self.actor_rollout_wg.mgrpo_load_momentum(str(step_dir / "momentum"))
            rows = truncate_log(self.metrics_path, self.global_steps)
            truncate_log(self.steps_path, self.global_steps)
        else:
            rows = []
            write_jsonl(self.metrics_path, rows)
            write_jsonl(self.steps_path, [])
        self._val_by_step = {r["step"]: r["val_acc"] for r in rows if r.get("val_acc") is not None}

    def _vocab(self) -> int:
        if self._vocab_size is None:
            from transformers import AutoConfig

            self._vocab_size = int(AutoConfig.from_pretrained(self.config.actor_rollout_ref.model.path).vocab_size)
        return self._vocab_size

    # ------------------------------------------------------------------ rollouts
    def _submit_batch_to_rollout(self, batch):
        size = len(batch)
        batch[stages.IS_MOMENTUM] = torch.zeros(size, dtype=torch.int64)
        if self.N:
            batch["__rollout_n__"] = torch.full((size,), self.M, dtype=torch.int64)
            self._submitted.append(batch)
        submitted = super()._submit_batch_to_rollout(batch)
        if self.split_placement:  # generated by the momentum replicas while the others write the policy's
            self._momentum_running += self._submit_momentum([str(u) for u in batch["uid"]])
        return submitted

    def _prompts_for(self, uids: list[str]):
        by_uid = {}
        for submitted in self._submitted:
            for i, uid in enumerate(submitted["uid"]):
                by_uid[str(uid)] = (submitted, i)
        missing = [u for u in uids if u not in by_uid]
        if missing:
            raise RuntimeError(f"momentum rollouts: {len(missing)} sampled prompts were never submitted")
        parts = [tu.index_select_tensor_dict(by_uid[u][0], [by_uid[u][1]]) for u in uids]
        return parts[0] if len(parts) == 1 else tu.concat_tensordict(parts)

    def _momentum_prompts(self, uids: list[str]):
        """The submitted prompts of ``uids`` again, as groups of N momentum rollouts under ``<uid>-momentum``."""
        prompts = self._prompts_for(uids)
        momentum_uids = [u + stages.MOMENTUM_UID_SUFFIX for u in uids]
        tu.assign_non_tensor_stack(prompts, "uid", momentum_uids)
        prompts["__rollout_n__"] = torch.full((len(uids),), self.N, dtype=torch.int64)
        prompts[stages.IS_MOMENTUM] = torch.ones(len(uids), dtype=torch.int64)
        tu.assign_non_tensor_data(prompts, "global_steps", self.global_steps)
        if self.split_placement:  # the agent loop that marks requests for the momentum replicas
            if "agent_name" in prompts.keys():
                raise ValueError("momentum_placement 'split' runs single-turn prompts only (the data sets agent_name)")
            tu.assign_non_tensor_data(prompts, "agent_name", replica_split.MOMENTUM_AGENT)
        return prompts, momentum_uids

    def _submit_momentum(self, uids: list[str]) -> list[str]:
        """Dispatch N momentum rollouts for each prompt of ``uids``; returns their group uids."""
        prompts, momentum_uids = self._momentum_prompts(uids)
        # Not tagged is_prompt: the replay buffer must never sample these groups on their own.
        tq.kv_batch_put(keys=momentum_uids, partition_id="train",
                        tags=[{"status": "pending", "global_steps": self.global_steps} for _ in uids])
        self.agent_loop_manager.generate_sequences(prompts)
        return momentum_uids

    def _wait_for_momentum(self, momentum_uids: list[str]) -> dict:
        """Poll TransferQueue until every group of ``momentum_uids`` is done; returns the partition's items."""
        while True:
            items = (tq.kv_list("train") or {}).get("train", {})
            if all(items.get(u, {}).get("status") in ("finished", "failure") for u in momentum_uids):
                return items
            time.sleep(POLL_SECONDS)

    def _collect_momentum(self, momentum_uids: list[str], discard: list[str] = ()) -> tuple[list, list]:
        """The trajectory keys and tags of the momentum groups; their status markers (and every row and marker of
        the ``discard`` groups: prompts submitted but not sampled) are cleared.

        A failed group (one of its sessions raised: verl's agent loop writes the others' rows and marks the
        group ``failure``) gives the rows it has, as verl does for the policy's failed groups: that prompt votes
        with fewer anchor rollouts this step, counted in ``mgrpo/momentum_failed_groups``. Only when every group
        failed (the engine is broken, not one request) does the step stop."""
        items = self._wait_for_momentum(momentum_uids)
        failed = [u for u in momentum_uids if items[u].get("status") == "failure"]
        if momentum_uids and len(failed) == len(momentum_uids):
            raise RuntimeError(f"momentum rollouts failed for all {len(failed)} prompts of the step")
        self._momentum_failed_groups = len(failed)
        wanted, dropped = set(momentum_uids), set(discard) - set(momentum_uids)
        keys = [k for k in items if k not in wanted and k.split("_")[0] in wanted]
        dropped_rows = [k for k in items if k not in dropped and k.split("_")[0] in dropped]
        tq.kv_clear(keys=list(momentum_uids) + sorted(dropped) + dropped_rows, partition_id="train")
        return keys, [items[k] for k in keys]

    def _generate_momentum(self, uids: list[str]) -> tuple[list, list]:
        """Serial placement: N rollouts per prompt from the rollout engine (which holds the EMA weights now)."""
        return self._collect_momentum(self._submit_momentum(uids))

    def on_sample_end(self):
        if self._momentum_running:  # split placement: no replica may sleep while the momentum ones still generate
            with marked_timer("mgrpo_momentum_wait", self.timing_raw, color="purple"):
                # a failed group matters only if its prompt was sampled (_balance_batch); the others are dropped
                self._wait_for_momentum(self._momentum_running)
        super().on_sample_end()

    def _balance_batch(self, batch: KVBatchMeta, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        if self.N:
            uids = list(dict.fromkeys(k.split("_")[0] for k, t in zip(batch.keys, batch.tags)
                                      if not t.get("is_padding", False)))
            if self.split_placement:
                sampled = [u + stages.MOMENTUM_UID_SUFFIX for u in uids]
                never = sorted(set(sampled) - set(self._momentum_running))
                if never:  # waiting on groups nobody started would hang
                    raise RuntimeError(f"momentum rollouts: {len(never)} sampled prompts had no momentum groups "
                                       "submitted with them")
                keys, tags = self._collect_momentum(sampled, discard=self._momentum_running)
                self._momentum_running = []
            else:
                # The engine sleeps after the policy's rollouts (on_sample_end); update_weights wakes it.
                with marked_timer("mgrpo_momentum_swap", self.timing_raw, color="purple"):
                    ray.get(self.actor_rollout_wg.mgrpo_sync_momentum_weights())
                with marked_timer("mgrpo_momentum_gen", self.timing_raw, color="purple"):
                    keys, tags = self._generate_momentum(uids)
                self.checkpoint_manager.sleep_replicas()
            metrics["mgrpo/momentum_failed_groups"] = self._momentum_failed_groups
            batch = KVBatchMeta(keys=list(batch.keys) + keys, tags=list(batch.tags) + tags,
                                partition_id=batch.partition_id, extra_info=dict(batch.extra_info or {}))
        self._submitted = []
        return super()._balance_batch(batch, metrics, logging_prefix=logging_prefix, keep_minibatch=keep_minibatch)

    # ------------------------------------------------------------------ the method's stage
    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        fields = ["uid", "response_mask", "entropy", "extra_fields", stages.IS_MOMENTUM, stages.GOLD]
        log_prob_fields = ["rollout_log_probs", "old_log_probs"] if self.compare_rollout_log_probs else []
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields + log_prob_fields)
        nested_mask = data["response_mask"]
        padded = data.select("response_mask", "entropy", *log_prob_fields).to_padded_tensor()
        response_mask, entropy = padded["response_mask"], padded["entropy"]
        real = np.asarray([not t.get("is_padding", False) for t in batch.tags], dtype=bool)
        idx = torch.as_tensor(np.flatnonzero(real))
        # Non-tensor fields come back as a list, a NonTensorStack or an array depending on TransferQueue's
        # backend; list() normalises all of them (as verl's own _compute_reward_colocate does).
        extra_fields = list(data["extra_fields"])
        answers = [((e or {}).get("reward_extra_info") or {}).get(stages.ANSWER) for e in extra_fields]
        proto = DataProto.from_dict(
            tensors={"response_mask": response_mask[idx], "entropy": entropy[idx].float()},
            non_tensors={
                "uid": np.asarray([str(u) for u in list(data["uid"])], dtype=object)[real],
                stages.ANSWER: np.asarray(answers, dtype=object)[real],
                stages.IS_MOMENTUM: data[stages.IS_MOMENTUM].cpu().numpy().astype(bool)[real],
                stages.GOLD: np.asarray(list(data[stages.GOLD]), dtype=object)[real],
                # keys are "<uid>_<session id>_<output index>" (verl's agent loop): the session id is the
                # rollout's index among the prompt's n
                stages.ROLLOUT_INDEX: np.asarray([int(key.rsplit("_", 2)[1]) for key in batch.keys])[real],
            },
        )
        proto, scores = stages.score_dataproto(
            proto, self.method, k=self.iqr_k, keep_fraction=self.keep_fraction,
            momentum_in_loss=self.momentum_in_loss, token_statistic=self.token_statistic,
            vocab_size=self._vocab() if self.token_statistic == "self_certainty" else None)

        advantages = torch.zeros_like(entropy, dtype=torch.float32)
        new_mask = torch.zeros_like(response_mask)
        advantages[idx] = proto.batch["advantages"]
        new_mask[idx] = proto.batch["response_mask"]
        output = {"advantages": response_to_nested(advantages, nested_mask),
                  "returns": response_to_nested(advantages.clone(), nested_mask),
                  "response_mask": response_to_nested(new_mask, nested_mask),
                  "loss_mask": response_to_nested(new_mask.clone(), nested_mask)}
        batch = tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id,
                                fields=TensorDict(output, batch_size=len(batch)))

        per_row = stages.trajectory_means(proto.batch["entropy"], padded["response_mask"][idx])
        self._method_metrics = stages.step_metrics(
            scores, proto.non_tensor_batch[stages.IS_MOMENTUM], per_row if self.token_statistic == "entropy" else None)
        if log_prob_fields:  # whether the momentum rows came from the EMA weights and the policy's were restored
            self._log_prob_gaps = stages.rollout_logprob_gaps(
                padded["rollout_log_probs"][idx], padded["old_log_probs"][idx], padded["response_mask"][idx],
                proto.non_tensor_batch[stages.IS_MOMENTUM])
            metrics.update({f"mgrpo/{k}": v for k, v in self._log_prob_gaps.items() if v is not None})
        metrics.update({f"mgrpo/{k}": v for k, v in self._method_metrics.items() if v is not None})
        return batch

    def _update_actor(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        batch = super()._update_actor(batch, metrics)
        if self.N:  # EMA right after the actor update, on shard-local tensors
            with marked_timer("mgrpo_ema", self.timing_raw, color="purple"):
                self.actor_rollout_wg.mgrpo_ema_update()
        return batch

    # ------------------------------------------------------------------ validation, metrics, checkpoints
    def _validate(self) -> dict:
        result = super()._validate()
        if self.global_steps == 0:  # before training: the step-0 row of metrics.jsonl
            row = {key: None for key in metrics_io.METRIC_KEYS} | {"step": 0}
            row["val_acc"], row["val_acc_greedy"] = metrics_io.val_accuracy(result), None
            append_row(self.metrics_path, row)
            if row["val_acc"] is not None:
                self._val_by_step[0] = row["val_acc"]
        return result

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        rollouts = int(self.config.data.train_batch_size) * self.G
        row = metrics_io.metrics_row(global_steps, self._method_metrics, metrics, rollouts)
        append_row(self.metrics_path, row)
        if row.get("val_acc") is not None:
            self._val_by_step[global_steps] = row["val_acc"]
        if self._save_pending:  # after the row: a resumed run never misses a step's metrics
            # verl's own "save_checkpoint" timer only saw the deferral; this one is the save (after validation)
            with marked_timer("mgrpo_save_checkpoint", timing_raw, color="green"):
                self._save_now()
            metrics["timing_s/mgrpo_save_checkpoint"] = timing_raw["mgrpo_save_checkpoint"]  # logged after this
        append_row(self.steps_path, {"step": global_steps,
                                                "timing_s": {k: float(v) for k, v in timing_raw.items()},
                                                "log_prob_gaps": self._log_prob_gaps,
                                                "momentum_failed_groups": metrics.get("mgrpo/momentum_failed_groups")})

    def _save_checkpoint(self):
        self._save_pending = True

    def _save_now(self):
        self._save_pending = False
        step_dir = self.ckpt_root / f"global_step_{self.global_steps}"
        if self.N:
            self.actor_rollout_wg.mgrpo_save_momentum(str(step_dir / "momentum"))
        PPOTrainer._save_checkpoint(self)  # writes verl's tracker last
        saved = ckpt.checkpoint_steps(self.ckpt_root)
        best = ckpt.best_step(self._val_by_step, saved)
        write_json(self.ckpt_root / "mgrpo_best.json",
                   {"best_step": best, "val_by_step": {str(k): v for k, v in self._val_by_step.items()}}, sort_keys=True)
        ckpt.prune(self.ckpt_root, best=best, keep_last=KEEP_LAST_CHECKPOINTS)


class _MGRPOTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's V1 task runner; defining it here imports this module (and registers the trainer) in its process."""

    def run(self, config):
        from verl.trainer.ppo.v1 import get_trainer_cls

        get_trainer_cls(TRAINER_MODE)  # fails loudly if the registration did not happen in this process
        return super().run(config)


MGRPOTaskRunner = ray.remote(num_cpus=1)(_MGRPOTaskRunner)
