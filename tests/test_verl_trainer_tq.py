"""The trainer's TransferQueue glue on CPU (real TransferQueue on a local Ray), as verl's *_on_cpu tests do.

MGRPOTrainer's stage methods run against rows laid out the way verl's agent loop writes them; the GPU-only parts
(workers, vLLM, update_weights) are not involved. Starting Ray + TransferQueue takes ~15-20 s on 2 cores.
"""
import asyncio
import math
import uuid

import numpy as np
import pytest
import torch

pytest.importorskip("verl")
tq = pytest.importorskip("transfer_queue")
ray = pytest.importorskip("ray")

from mgrpo.core import get_method  # noqa: E402
from mgrpo.verl_backend import stages  # noqa: E402

S3 = 1 / math.sqrt(3)


@pytest.fixture(scope="module")
def session():
    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)  # num_cpus: avoids a hang on 2 cores
    tq.init()
    yield
    tq.close()
    ray.shutdown()


def make_trainer(method="mgrpo"):
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    trainer = object.__new__(MGRPOTrainer)  # no Ray workers: only the driver-side stage is exercised
    trainer.method = get_method(method)
    trainer.iqr_k, trainer.keep_fraction, trainer.momentum_in_loss = 0.75, 1.0, False
    trainer.token_statistic, trainer._vocab_size, trainer._method_metrics = "entropy", None, {}
    trainer._log_prob_gaps, trainer.compare_rollout_log_probs = None, False
    trainer._momentum_failed_groups = 0
    trainer.G, trainer.N, trainer.M = 4, 1, 3
    trainer.split_placement, trainer._momentum_running, trainer._submitted = False, [], []
    trainer.global_steps = 1
    return trainer


def trajectory(uid, n_tokens, answer, momentum, gold, entropy=1.0):
    return {"uid": uid, "response_mask": torch.ones(n_tokens, dtype=torch.int64),
            "loss_mask": torch.ones(n_tokens, dtype=torch.int64),
            "entropy": torch.full((n_tokens,), entropy),
            "extra_fields": {"reward_extra_info": {stages.ANSWER: answer}},
            stages.IS_MOMENTUM: torch.tensor(int(momentum)), stages.GOLD: gold}


def put(rows, keys, tags):
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(rows), tags=tags)


def test_compute_advantage_through_transfer_queue(session):
    from transfer_queue import KVBatchMeta

    a = uuid.uuid4().hex
    pad = "pad" + uuid.uuid4().hex
    spec = [(f"{a}_0_0", a, 3, "5", False), (f"{a}_1_0", a, 4, "7", False), (f"{a}{stages.MOMENTUM_UID_SUFFIX}_0_0",
            a + stages.MOMENTUM_UID_SUFFIX, 2, "5", True), (f"{a}_2_0", a, 2, "5", False),
            (f"{pad}_0_0", pad, 1, "7", False)]  # verl's padding row: same fields, never votes
    rows = [trajectory(uid, n, ans, mom, "5") for _, uid, n, ans, mom in spec]
    keys = [k for k, *_ in spec]
    tags = [{"seq_len": 4}] * 4 + [{"seq_len": 2, "is_padding": True}]
    put(rows, keys, tags)
    batch = KVBatchMeta(keys=keys, tags=tags, partition_id="train")
    metrics = {}
    make_trainer()._compute_advantage(batch, metrics)

    out = tq.kv_batch_get(keys=keys, partition_id="train",
                          select_fields=["advantages", "returns", "response_mask", "loss_mask"]).to_padded_tensor()
    # votes 5, 7, 5 (momentum), 5 -> label 5; policy rewards [1, 0, 1] -> [S3, -2 S3, S3]; momentum/pad: 0
    assert out["advantages"][:, 0].tolist() == pytest.approx([S3, -2 * S3, 0, S3, 0], abs=1e-5)
    assert torch.equal(out["returns"], out["advantages"])
    assert out["response_mask"].sum(dim=1).tolist() == [3, 4, 0, 2, 0]
    assert torch.equal(out["loss_mask"], out["response_mask"])
    assert metrics["mgrpo/momentum_agreement"] == 1.0 and metrics["mgrpo/pseudo_label_acc"] == 1.0
    assert metrics["mgrpo/reward"] == pytest.approx(2 / 3)
    assert not any("rollout_mismatch" in k or "kl_to_policy" in k for k in metrics)  # calculate_log_probs off
    tq.kv_clear(keys=keys, partition_id="train")


def test_rollout_log_probs_are_compared_per_row_kind_through_transfer_queue(session):
    """With rollout.calculate_log_probs on, the stage reads verl's ``rollout_log_probs`` and ``old_log_probs`` (as
    verl stores them: response-aligned, per row) and reports the policy rows' mismatch and the momentum rows'
    KL(EMA || policy) estimate; verl's padding row is left out."""
    from transfer_queue import KVBatchMeta

    a = uuid.uuid4().hex
    pad = "pad" + uuid.uuid4().hex
    spec = [(f"{a}_0_0", a, 2, "5", False, [-1.0, -2.0], [-1.5, -1.0]),
            (f"{a}{stages.MOMENTUM_UID_SUFFIX}_0_0", a + stages.MOMENTUM_UID_SUFFIX, 3, "5", True,
             [-0.5, -0.5, -0.5], [-0.5, -1.0, -1.5]),
            (f"{a}_1_0", a, 1, "5", False, [-3.0], [-1.0]),
            (f"{pad}_0_0", pad, 1, "5", False, [-9.0], [0.0])]
    rows = []
    for _, uid, n, ans, mom, rollout, actor in spec:
        row = trajectory(uid, n, ans, mom, "5")
        row["rollout_log_probs"], row["old_log_probs"] = torch.tensor(rollout), torch.tensor(actor)
        rows.append(row)
    keys = [k for k, *_ in spec]
    tags = [{"seq_len": 3}] * 3 + [{"seq_len": 1, "is_padding": True}]
    put(rows, keys, tags)
    trainer = make_trainer()
    trainer.G, trainer.N, trainer.M = 3, 1, 2
    trainer.compare_rollout_log_probs = True
    metrics = {}
    trainer._compute_advantage(KVBatchMeta(keys=keys, tags=tags, partition_id="train"), metrics)
    assert metrics["mgrpo/policy_rollout_mismatch"] == pytest.approx((0.5 + 1.0 + 2.0) / 3)
    assert metrics["mgrpo/momentum_kl_to_policy"] == pytest.approx((0.0 + 0.5 + 1.0) / 3)
    assert trainer._log_prob_gaps == {"policy_rollout_mismatch": pytest.approx(3.5 / 3),
                                      "momentum_kl_to_policy": pytest.approx(0.5)}
    tq.kv_clear(keys=keys, partition_id="train")


def test_generate_momentum_collects_rows_under_suffixed_uids(session):
    from verl.utils import tensordict_utils as tu

    trainer = make_trainer()
    uids = [uuid.uuid4().hex, uuid.uuid4().hex]
    prompts = tu.get_tensordict({"uid": np.array(uids, dtype=object), "index": torch.tensor([0, 1]),
                                 stages.IS_MOMENTUM: torch.zeros(2, dtype=torch.int64),
                                 "__rollout_n__": torch.full((2,), 3)})
    trainer._submitted = [prompts]
    seen = {}

    class FakeAgentLoop:  # what verl's AgentLoopWorkerTQ does: trajectories under {uid}_{session}_0, then status
        def generate_sequences(self, batch):
            seen["uids"] = list(batch["uid"])
            seen["n"] = batch["__rollout_n__"].tolist()
            seen["momentum"] = batch[stages.IS_MOMENTUM].tolist()
            for uid, n in zip(seen["uids"], seen["n"]):
                put([trajectory(uid, 2, "1", True, "1") for _ in range(n)], [f"{uid}_{s}_0" for s in range(n)],
                    [{"seq_len": 3, "status": "success"}] * n)
                tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})

    trainer.agent_loop_manager = FakeAgentLoop()
    keys, tags = trainer._generate_momentum(uids)
    assert seen == {"uids": [u + stages.MOMENTUM_UID_SUFFIX for u in uids], "n": [1, 1], "momentum": [1, 1]}
    assert sorted(keys) == sorted(f"{u}{stages.MOMENTUM_UID_SUFFIX}_0_0" for u in uids)
    assert all(t["seq_len"] == 3 for t in tags)
    listed = tq.kv_list("train")["train"]
    assert not any(u + stages.MOMENTUM_UID_SUFFIX in listed for u in uids)  # status markers cleared
    tq.kv_clear(keys=keys, partition_id="train")


def test_balance_batch_adds_the_momentum_groups_before_verls_balancing(session):
    """One call of the trainer's `_balance_batch` on a step's policy rows: the EMA is pushed, the momentum rollouts
    are generated and the engine put back to sleep, in that order, and verl's own balancing then sees all P x G rows
    (P x G is a multiple of its mini-batch arithmetic, so verl adds no padding rows)."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf
    from transfer_queue import KVBatchMeta

    from verl.utils import tensordict_utils as tu

    trainer = make_trainer()  # G = 4: M = 3 policy + N = 1 momentum rollouts per prompt
    trainer.config = OmegaConf.create({"trainer": {"critic_warmup": 0},
                                       "actor_rollout_ref": {"actor": {"ppo_mini_batch_size": 2}, "rollout": {"n": 4}}})
    trainer.use_critic, trainer.tokenizer, trainer.timing_raw = False, SimpleNamespace(eos_token_id=0), {}
    uids = [uuid.uuid4().hex, uuid.uuid4().hex]
    trainer._submitted = [tu.get_tensordict({"uid": np.array(uids, dtype=object), "index": torch.tensor([0, 1]),
                                             stages.IS_MOMENTUM: torch.zeros(2, dtype=torch.int64),
                                             "__rollout_n__": torch.full((2,), 3)})]
    policy_keys = [f"{u}_{s}_0" for u in uids for s in range(3)]
    put([trajectory(k.split("_")[0], 2, "1", False, "1") for k in policy_keys], policy_keys,
        [{"seq_len": 3 + i, "status": "success"} for i in range(len(policy_keys))])
    events = []

    class Workers:
        _dispatch_info = {"actor": [0]}  # one data-parallel rank

        def mgrpo_sync_momentum_weights(self):
            events.append(("swap",))
            return [ray.put(0.0)]

    class AgentLoop:
        def generate_sequences(self, batch):
            events.append(("generate", list(batch["uid"])))
            for uid in batch["uid"]:
                put([trajectory(uid, 2, "1", True, "1")], [f"{uid}_0_0"], [{"seq_len": 2, "status": "success"}])
                tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})

    trainer.actor_rollout_wg, trainer.agent_loop_manager = Workers(), AgentLoop()
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: events.append(("sleep",)))

    metrics = {}
    batch = trainer._balance_batch(KVBatchMeta(keys=list(policy_keys), tags=[{"seq_len": 3}] * 6,
                                               partition_id="train"), metrics)
    momentum_keys = [f"{u}{stages.MOMENTUM_UID_SUFFIX}_0_0" for u in uids]
    assert [e[0] for e in events] == ["swap", "generate", "sleep"]
    assert events[1][1] == [u + stages.MOMENTUM_UID_SUFFIX for u in uids]
    assert sorted(batch.keys) == sorted(policy_keys + momentum_keys)  # 2 x 4 rows: no padding row added
    assert not any(t.get("is_padding") for t in batch.tags) and trainer._submitted == []
    assert {"mgrpo_momentum_swap", "mgrpo_momentum_gen"} <= set(trainer.timing_raw)
    tq.kv_clear(keys=policy_keys + momentum_keys, partition_id="train")


def test_rollouts_stored_by_verls_agent_loop_reach_the_advantage_stage(session, bench_script, tmp_path):
    """The driver-side path of one step with verl 0.9.1's own code wherever no GPU is needed: prompts from verl's
    dataset, submitted by the trainer (policy M, momentum N per prompt), fanned out by verl's AgentLoopWorkerTQ;
    each rollout (a scripted response instead of vLLM's) goes through verl's `_compute_score` and reward manager
    (reward.py) and `_agent_loop_postprocess` into TransferQueue; the trainer's `_compute_advantage` then votes over
    all G answers and writes advantages for the policy rows only, and compares vLLM's log-probs (scripted) with the
    actor's. The entropy and log-probs that verl's old-log-prob pass would write are put by hand."""
    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer as verl_trainer
    from transformers import AutoTokenizer
    from transfer_queue import KVBatchMeta

    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import collate_fn
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    smoke = bench_script("gpu_smoke")
    data = smoke.build_data(tmp_path / "data")
    model = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=0)  # rollouts are scripted
    args = build_parser().parse_args(smoke.train_argv("mgrpo", model, data, tmp_path / "runs", steps=2))
    _, _, config = verl_trainer.validate_spec(train_spec(args))
    tokenizer = AutoTokenizer.from_pretrained(model)
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None, is_train=True)
    batch_dict = collate_fn([dataset[0]])
    uid = uuid.uuid4().hex
    batch_dict["uid"] = np.array([uid], dtype=object)
    batch = tu.get_tensordict(batch_dict)
    tu.assign_non_tensor_data(batch, "global_steps", 1)

    trainer = make_trainer()
    trainer.G, trainer.N, trainer.M = 8, 2, 6
    requests = []
    trainer.agent_loop_manager = type("Manager", (), {"generate_sequences": lambda self, b: requests.append(b)})()
    trainer.trainer_mode, trainer._submitted = "sync", []
    trainer._submit_batch_to_rollout(batch)
    momentum_batch, (momentum_uid,) = trainer._momentum_prompts([uid])

    # Scripted answers, policy sessions 0..5 and momentum sessions 0..1. The policy alone would elect 9 (3 votes);
    # the momentum rollouts bring 7 level with it (3 votes each), and the tie goes to the answer met first in the
    # CPU trainer's order (policy sessions, then momentum sessions): 7, policy session 0 -- whatever the order of
    # the rows in the batch, which verl's length balancing changes.
    answers = {uid: ["7", "5", "5", "9", "9", "9"], momentum_uid: ["7", "7"]}
    worker = object.__new__(AgentLoopWorkerTQ.__ray_actor_class__)
    worker.config, worker.background_tasks = config, set()
    worker.processor, worker.mm_processor_kwargs, worker.distillation_enabled = None, None, False

    class RewardWorker:  # stands for verl's RewardLoopWorker actor: its reward manager, in this process
        def __init__(self):
            self.manager = None

        async def _score(self, data):
            if self.manager is None:  # built on the running loop, as the actor builds it on its own
                self.manager = load_reward_manager(config, tokenizer)
            return await self.manager.run_single(data)

        @property
        def compute_score(self):
            return type("Remote", (), {"remote": lambda _, data: self._score(data)})()

    worker.reward_loop_worker_handles = [RewardWorker()]

    async def run_agent_loop(sampling_params, trajectory, *, agent_name, trace=False, **kwargs):
        text = f"I think \\boxed{{{answers[kwargs['uid']][kwargs['session_id']]}}}"
        response = tokenizer.encode(text, add_special_tokens=False)
        prompt = tokenizer.apply_chat_template(list(kwargs["raw_prompt"]), add_generation_prompt=True, tokenize=False)
        # vLLM's log-probs of its samples: -1 per token for the policy's, -0.5 for the momentum model's
        logprob = -0.5 if kwargs["uid"] == momentum_uid else -1.0
        output = AgentLoopOutput(prompt_ids=tokenizer.encode(prompt, add_special_tokens=False), response_ids=response,
                                 response_mask=[1] * len(response), response_logprobs=[logprob] * len(response),
                                 metrics=AgentLoopMetrics())
        return await worker._agent_loop_postprocess(output, trajectory["validate"], **kwargs)

    worker._run_agent_loop = run_agent_loop

    async def generate_all():
        for request in requests + [momentum_batch]:
            await worker.generate_sequences(request)
        await asyncio.gather(*list(worker.background_tasks))

    asyncio.run(generate_all())

    listed = tq.kv_list("train")["train"]
    keys = sorted(k for k in listed if k.startswith(uid) and k.count("_") == 2)
    assert len(keys) == 8 and sum(k.startswith(momentum_uid) for k in keys) == 2
    keys.sort(key=lambda k: -int(k.rsplit("_", 2)[1]))  # policy session 5 (a 9) first, as balancing may put it
    lengths = [int(t["response_len"]) for t in (listed[k] for k in keys)]
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(  # the old-log-prob pass
        [{"entropy": torch.ones(n), "old_log_probs": torch.full((n,), -1.0)} for n in lengths]))
    metrics = {}
    trainer.compare_rollout_log_probs = True  # the smoke's (and verl's default) rollout.calculate_log_probs
    trainer._compute_advantage(KVBatchMeta(keys=keys, tags=[listed[k] for k in keys], partition_id="train"), metrics)

    out = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["advantages", "response_mask"])
    adv = {k: float(a[0]) for k, a in zip(keys, out["advantages"].unbind())}
    kept = {k: int(m.sum()) for k, m in zip(keys, out["response_mask"].unbind())}
    # Policy rewards [1, 0, 0, 0, 0, 0]: mean 1/6, sample std sqrt((25/36 + 5/36) / 5); advantage (r - mean) / std.
    std = math.sqrt((25 / 36 + 5 / 36) / 5)
    for key in keys:
        group, session = key.rsplit("_", 2)[0], int(key.rsplit("_", 2)[1])
        if group == momentum_uid:
            assert adv[key] == 0.0 and kept[key] == 0  # momentum rows: no gradient, no tokens
        else:
            expected = (5 / 6) / std if answers[uid][session] == "7" else (-1 / 6) / std
            assert adv[key] == pytest.approx(expected, abs=1e-5) and kept[key] > 0
    assert metrics["mgrpo/momentum_agreement"] == pytest.approx(1.0)  # both momentum answers are the label
    # verl's postprocess stored the rollout log-probs where the stage reads them, aligned with the response tokens
    assert metrics["mgrpo/policy_rollout_mismatch"] == pytest.approx(0.0)
    assert metrics["mgrpo/momentum_kl_to_policy"] == pytest.approx(0.5)
    tq.kv_clear(keys=keys + [uid, momentum_uid], partition_id="train")


def test_trainer_registered_for_verl_lookup():
    from verl.trainer.ppo.v1 import get_trainer_cls

    from mgrpo.verl_backend.verl_trainer import TRAINER_MODE, MGRPOTrainer

    assert get_trainer_cls(TRAINER_MODE) is MGRPOTrainer
    assert TRAINER_MODE == "mgrpo_sync"


def test_trainer_builds_from_the_smoke_config_with_verls_sync_replay_buffer(session, bench_script, tmp_path):
    """verl's own PPOTrainerSync.__init__ under MGRPOTrainer, from the composed smoke config: sync semantics under
    the registered name, verl's sync replay buffer, polled every POLL_SECONDS (verl's 2 s default would round each
    step's generation up to the next poll), and G = M + N from the config."""
    from omegaconf import OmegaConf

    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import trainer as verl_trainer
    from mgrpo.verl_backend.verl_trainer import POLL_SECONDS, MGRPOTrainer
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    smoke = bench_script("gpu_smoke")
    data = smoke.build_data(tmp_path / "data")
    model = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=0)
    args = build_parser().parse_args(smoke.train_argv("mgrpo", model, data, tmp_path / "runs", steps=2))
    _, _, config = verl_trainer.validate_spec(train_spec(args))
    config.transfer_queue.enable = True  # what verl's task runner sets before building the trainer
    OmegaConf.resolve(config)
    trainer = MGRPOTrainer(config)
    assert trainer.trainer_mode == "sync" and type(trainer.replay_buffer) is ReplayBuffer
    assert trainer.replay_buffer.poll_interval == POLL_SECONDS <= 0.1
    assert (trainer.G, trainer.M, trainer.N) == (8, 6, 2)


def test_split_placement_balance_takes_the_sampled_momentum_groups_and_drops_the_rest(session):
    """Split placement: the momentum groups were generated with the policy's (no swap, no second round, no extra
    sleep); `_balance_batch` adds those of the sampled prompts and clears the groups of prompts that were submitted
    but not sampled (verl refills failed groups with fresh prompts, which got momentum groups of their own)."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf
    from transfer_queue import KVBatchMeta

    trainer = make_trainer()
    trainer.split_placement = True
    trainer.config = OmegaConf.create({"trainer": {"critic_warmup": 0},
                                       "actor_rollout_ref": {"actor": {"ppo_mini_batch_size": 2}, "rollout": {"n": 4}}})
    trainer.use_critic, trainer.tokenizer, trainer.timing_raw = False, SimpleNamespace(eos_token_id=0), {}
    sampled, unsampled = [uuid.uuid4().hex, uuid.uuid4().hex], uuid.uuid4().hex
    policy_keys = [f"{u}_{s}_0" for u in sampled for s in range(3)]
    put([trajectory(k.split("_")[0], 2, "1", False, "1") for k in policy_keys], policy_keys,
        [{"seq_len": 3, "status": "success"}] * len(policy_keys))
    running = [u + stages.MOMENTUM_UID_SUFFIX for u in sampled + [unsampled]]
    for m in running:
        put([trajectory(m, 2, "1", True, "1")], [f"{m}_0_0"], [{"seq_len": 2, "status": "success"}])
        tq.kv_put(key=m, partition_id="train", tag={"status": "finished"})
    trainer._momentum_running = list(running)

    class Nothing:  # the serial path's calls must not happen
        def __getattr__(self, name):
            raise AssertionError(f"split placement called {name}")

    trainer.agent_loop_manager = trainer.checkpoint_manager = Nothing()
    trainer.actor_rollout_wg = SimpleNamespace(_dispatch_info={"actor": [0]})  # one data-parallel rank, no methods

    batch = trainer._balance_batch(KVBatchMeta(keys=list(policy_keys), tags=[{"seq_len": 3}] * 6,
                                               partition_id="train"), {})
    momentum_keys = [f"{m}_0_0" for m in running[:2]]
    assert sorted(batch.keys) == sorted(policy_keys + momentum_keys)
    assert trainer._momentum_running == [] and not {"mgrpo_momentum_swap", "mgrpo_momentum_gen"} & set(trainer.timing_raw)
    listed = tq.kv_list("train")["train"]
    assert not any(k in listed for k in running + [f"{running[2]}_0_0"])  # markers and the unsampled group gone
    tq.kv_clear(keys=policy_keys + momentum_keys, partition_id="train")


def test_split_placement_tells_router_and_workers_which_replicas_hold_the_ema(session):
    """The router is the Ray actor verl's own get_router_handle builds from our YAML (rollout.router_config_path);
    the trainer gives it k and the workers the ranks of those replicas; verl's default router is refused."""
    from types import SimpleNamespace

    from mgrpo.verl_backend import replica_split as rs
    from mgrpo.verl_backend.trainer import SPLIT_ROUTER_FILE
    from verl.workers.rollout.router import get_router_handle

    trainer = make_trainer()
    trainer.split_placement, trainer.G, trainer.N = True, 32, 8
    servers = {f"s{i}": i for i in range(8)}
    router = get_router_handle(servers, router_config_path=str(SPLIT_ROUTER_FILE))
    trainer.llm_server_manager = SimpleNamespace(get_replicas=lambda: [None] * 8, global_load_balancer=router)
    trainer.actor_rollout_wg = SimpleNamespace(world_size=8)
    assert trainer._momentum_ranks() == [6, 7]  # 8 replicas at TP = 1, k = 8 x 8 / 32 = 2: the last two
    placed = {ray.get(router.acquire_server.remote(request_id=rs.MOMENTUM_REQUEST_PREFIX + str(i)))[0]
              for i in range(4)}
    assert placed == {"s6", "s7"}
    trainer.llm_server_manager.global_load_balancer = get_router_handle(servers)  # verl's default
    with pytest.raises(RuntimeError, match="router_config_path"):
        trainer._momentum_ranks()


def test_split_placement_fails_only_for_failed_or_missing_momentum_groups_of_sampled_prompts(session):
    """A failed momentum group of a prompt that was not sampled is dropped (verl replaced that prompt); when the
    groups of every sampled prompt failed the step stops, and a sampled prompt without momentum groups is an error,
    not an endless wait."""
    from types import SimpleNamespace

    from transfer_queue import KVBatchMeta

    trainer = make_trainer()
    trainer.split_placement, trainer.timing_raw, trainer.curr_step_profile = True, {}, False
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: None)
    sampled, replaced = uuid.uuid4().hex, uuid.uuid4().hex
    good, bad = sampled + stages.MOMENTUM_UID_SUFFIX, replaced + stages.MOMENTUM_UID_SUFFIX
    tq.kv_put(key=good, partition_id="train", tag={"status": "failure"})
    tq.kv_put(key=bad, partition_id="train", tag={"status": "failure"})
    trainer._momentum_running = [good, bad]
    trainer.on_sample_end()  # waits, does not judge
    policy = KVBatchMeta(keys=[f"{sampled}_0_0"], tags=[{"seq_len": 3}], partition_id="train")
    with pytest.raises(RuntimeError, match="momentum rollouts failed for all 1 prompts"):
        trainer._balance_batch(policy, {})
    trainer._momentum_running = [bad]
    with pytest.raises(RuntimeError, match="1 sampled prompts had no momentum groups submitted"):
        trainer._balance_batch(policy, {})
    tq.kv_clear(keys=[good, bad], partition_id="train")


def test_a_failed_momentum_group_votes_with_the_rows_it_has_and_is_counted(session):
    """As verl keeps a failed policy group's finished rows: one momentum session of one prompt raised (no row), the
    other prompt's group finished; the step goes on with the momentum rows that exist and logs one failed group."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf
    from transfer_queue import KVBatchMeta

    from verl.utils import tensordict_utils as tu

    trainer = make_trainer()
    trainer.config = OmegaConf.create({"trainer": {"critic_warmup": 0},
                                       "actor_rollout_ref": {"actor": {"ppo_mini_batch_size": 2}, "rollout": {"n": 4}}})
    trainer.use_critic, trainer.tokenizer, trainer.timing_raw = False, SimpleNamespace(eos_token_id=0), {}
    ok, broken = uuid.uuid4().hex, uuid.uuid4().hex
    trainer._submitted = [tu.get_tensordict({"uid": np.array([ok, broken], dtype=object), "index": torch.tensor([0, 1]),
                                             stages.IS_MOMENTUM: torch.zeros(2, dtype=torch.int64),
                                             "__rollout_n__": torch.full((2,), 3)})]
    policy_keys = [f"{u}_{s}_0" for u in (ok, broken) for s in range(3)]
    put([trajectory(k.split("_")[0], 2, "1", False, "1") for k in policy_keys], policy_keys,
        [{"seq_len": 3, "status": "success"}] * len(policy_keys))

    class AgentLoop:  # verl's agent loop: the finished sessions' rows, then the group's status
        def generate_sequences(self, batch):
            for uid in batch["uid"]:
                if uid.startswith(ok):
                    put([trajectory(uid, 2, "1", True, "1")], [f"{uid}_0_0"], [{"seq_len": 2, "status": "success"}])
                tq.kv_put(key=uid, partition_id="train", tag={"status": "finished" if uid.startswith(ok) else "failure"})

    trainer.actor_rollout_wg = SimpleNamespace(_dispatch_info={"actor": [0]},
                                               mgrpo_sync_momentum_weights=lambda: [ray.put(0.0)])
    trainer.agent_loop_manager = AgentLoop()
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: None)
    metrics = {}
    batch = trainer._balance_batch(KVBatchMeta(keys=list(policy_keys), tags=[{"seq_len": 3}] * 6,
                                               partition_id="train"), metrics)
    momentum_key = f"{ok}{stages.MOMENTUM_UID_SUFFIX}_0_0"
    real = [k for k, t in zip(batch.keys, batch.tags) if not t.get("is_padding")]
    assert sorted(real) == sorted(policy_keys + [momentum_key])  # verl pads the 7 rows to its batch multiple
    assert metrics["mgrpo/momentum_failed_groups"] == 1
    listed = tq.kv_list("train")["train"]
    assert not any(u + stages.MOMENTUM_UID_SUFFIX in listed for u in (ok, broken))  # status markers cleared
    tq.kv_clear(keys=list(batch.keys), partition_id="train")


@pytest.mark.parametrize("placement, gpus", [("serial", 1), ("split", 4)])
def test_a_steps_rollouts_through_verls_own_submission_and_sync_replay_buffer(session, bench_script, tmp_path,
                                                                              placement, gpus):
    """One step's rollout phase on the smoke's config, with the trainer built by verl's own __init__: verl's
    prepare_step submits the dataloader's prompts, verl's sync replay buffer samples the policy groups, verl's
    sleep follows, and _balance_batch hands verl's balancing all P x G rows. Serial: the momentum groups are
    generated after the swap, in a second round, then the engines sleep again. Split: they were submitted with the
    policy's (sampled around by the replay buffer) and are waited for before the sleep; no swap. Only the agent-loop
    workers and the worker group are stand-ins: the former store each prompt's rollouts and mark it finished, as
    AgentLoopWorkerTQ does."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from mgrpo.cli import build_parser, train_spec
    from mgrpo.verl_backend import replica_split as rs
    from mgrpo.verl_backend import trainer as verl_trainer
    from mgrpo.verl_backend.verl_trainer import MGRPOTrainer

    smoke = bench_script("gpu_smoke")
    data = smoke.build_data(tmp_path / "data")
    model = smoke.build_tiny_model(tmp_path / "model", data, warm_start_steps=0)
    argv = smoke.train_argv("mgrpo", model, data, tmp_path / "runs", steps=2, gpus=gpus, placement=placement)
    _, _, config = verl_trainer.validate_spec(train_spec(build_parser().parse_args(argv)))
    config.transfer_queue.enable = True
    config.data.dataloader_num_workers = 0  # verl's 8 loader processes take ~40 s to wind down after the test
    OmegaConf.resolve(config)
    trainer = MGRPOTrainer(config)
    trainer._init_tokenizer()  # the first two steps of verl's _setup (the rest starts Ray workers and vLLM)
    trainer._init_dataloader()
    split = placement == "split"
    assert trainer.split_placement == split and (trainer.G, trainer.M, trainer.N) == (8, 6, 2)
    P = int(config.data.train_batch_size)
    requests, events = [], []

    class AgentLoopWorkers:
        def generate_sequences(self, batch):
            names = batch["agent_name"] if "agent_name" in batch.keys() else None
            requests.append((len(batch), getattr(names, "data", names)))
            events.append("generate")
            for i, uid in enumerate(batch["uid"]):
                n, momentum = int(batch["__rollout_n__"][i]), int(batch[stages.IS_MOMENTUM][i])
                put([trajectory(uid, 2, "1", momentum, "1") for _ in range(n)], [f"{uid}_{s}_0" for s in range(n)],
                    [{"seq_len": 3, "status": "success", "global_steps": 1}] * n)
                tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})

    class Workers:
        _dispatch_info = {"actor": list(range(gpus))}

        def mgrpo_sync_momentum_weights(self):
            events.append("swap")
            return [ray.put(0.0)]

    trainer.agent_loop_manager, trainer.actor_rollout_wg = AgentLoopWorkers(), Workers()
    trainer.checkpoint_manager = SimpleNamespace(sleep_replicas=lambda: events.append("sleep"))
    trainer.global_steps, trainer.timing_raw, trainer.curr_step_profile = 1, {}, False

    trainer.prepare_step()
    batch, _ = trainer.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=P)
    assert len(batch) == P * trainer.M  # verl sampled the policy groups only
    trainer.on_sample_end()
    batch = trainer._balance_batch(batch, {})
    if split:
        assert requests == [(P, None), (P, rs.MOMENTUM_AGENT)]  # the momentum groups went out with the policy's
        assert events == ["generate", "generate", "sleep"] and "mgrpo_momentum_wait" in trainer.timing_raw
    else:
        assert requests == [(P, None), (P, None)]
        assert events == ["generate", "sleep", "swap", "generate", "sleep"]
        assert {"mgrpo_momentum_swap", "mgrpo_momentum_gen"} <= set(trainer.timing_raw)
    assert len(batch) == P * trainer.G and not any(t.get("is_padding") for t in batch.tags)
    momentum = [k for k in batch.keys if k.split("_")[0].endswith(stages.MOMENTUM_UID_SUFFIX)]
    assert len(momentum) == P * trainer.N
    assert set((tq.kv_list("train") or {}).get("train", {})) == set(batch.keys)  # nothing else left behind
    tq.kv_clear(keys=list(batch.keys), partition_id="train")
