"""CPU backend: KV-cached rollouts and the toy GRPO / M-GRPO trainer."""
