"""The momentum model's own work per step at a real model's shard size, on one device.

    python bench/ema_cost.py --device cuda --out ema_cost.json        # one rank of 8 training a ~4B model on GPUs
    python bench/ema_cost.py --device cpu --out ema_cost_host.json    # the same, parameters offloaded to the host

Times, on the fp32 shard that one of ``--ranks`` FSDP ranks holds of a ``--params``-parameter model (split into
``--tensors`` tensors, as FSDP2 keeps one local tensor per parameter):

* the EMA update, ``mgrpo.core.ema_update_`` (one ``torch._foreach_lerp_``), what the worker runs after each actor
  update;
* the actor-side part of a momentum push, ``mgrpo.core.ema_loaded`` (back up the policy shard, load the EMA into it,
  restore the policy) with nothing inside; the transfer to vLLM is the policy sync's own and bench/gpu_smoke.py
  times the whole push against it.

Each is reported as the median of ``--repeats`` timed runs after one warm-up, with the bandwidth it reached (bytes
read and written per element: 12 for the update, 24 for the swap) and the extra memory the swap's backup holds. The
share of a training step is this time over the step's; bench/gpu_smoke.py measures steps.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shard_tensors(elements: int, tensors: int, device: str):
    import torch

    sizes = [elements // tensors + (1 if i < elements % tensors else 0) for i in range(tensors)]
    generator = torch.Generator(device="cpu").manual_seed(0)
    return [torch.randn(n, generator=generator).to(device) for n in sizes]


def timed(fn, device: str, repeats: int) -> list[float]:
    """Seconds per call, device-synchronised (CUDA events on a GPU), after one untimed warm-up call."""
    import torch

    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return times


def measure(params: float, ranks: int, tensors: int, device: str, repeats: int, m: float = 0.99) -> dict:
    import torch

    from mgrpo.core import ema_loaded, ema_update_

    elements = int(params) // ranks
    if elements < tensors:
        raise ValueError(f"--params / --ranks = {elements} elements is fewer than --tensors = {tensors}")
    policy = shard_tensors(elements, tensors, device)
    ema = [p.clone() for p in policy]
    with torch.no_grad():
        ema[0].add_(1.0)
    before, source = ema[0].clone(), policy[0].clone()
    ema_update_(ema, policy, m)  # the check that what is timed is the update it claims to be
    if not torch.allclose(ema[0], m * before + (1 - m) * source, atol=1e-6):
        raise RuntimeError("ema_update_ did not compute m * ema + (1 - m) * policy")

    update = timed(lambda: ema_update_(ema, policy, m), device, repeats)

    def swap():
        with ema_loaded(lambda: policy, ema):
            pass

    swap_times = timed(swap, device, repeats)
    if not torch.equal(policy[0], source):
        raise RuntimeError("ema_loaded did not restore the policy")

    shard_bytes = elements * 4
    result = {"elements_per_rank": elements, "tensors": tensors, "shard_gib": shard_bytes / 2**30,
              "ema_update_s": statistics.median(update), "ema_update_all_s": update,
              "swap_s": statistics.median(swap_times), "swap_all_s": swap_times,
              "swap_backup_gib": shard_bytes / 2**30}
    result["ema_update_gb_per_s"] = 12 * elements / result["ema_update_s"] / 1e9
    result["swap_gb_per_s"] = 24 * elements / result["swap_s"] / 1e9
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=float, default=4.0e9, help="model parameters (default: about Qwen3-4B's)")
    parser.add_argument("--ranks", type=int, default=8, help="FSDP ranks the model is sharded over (paper: 8 GPUs)")
    parser.add_argument("--tensors", type=int, default=400, help="parameter tensors (about Qwen3-4B's)")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for the EMA in host memory (param offload)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for name in ("params", "ranks", "tensors", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1 (got {getattr(args, name)})")

    import torch

    from mgrpo.atomic import write_json

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("ema_cost: no CUDA GPU visible; use --device cpu for the host-memory case", file=sys.stderr)
        return 2
    result = measure(args.params, args.ranks, args.tensors, args.device, args.repeats)
    device_name = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                   else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    payload = {"date": time.strftime("%Y-%m-%d"), "device": device_name, "torch": torch.__version__,
               "params": args.params, "ranks": args.ranks, "repeats": args.repeats, **result}
    write_json(args.out, payload)
    print(json.dumps({k: v for k, v in payload.items() if not k.endswith("_all_s")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
