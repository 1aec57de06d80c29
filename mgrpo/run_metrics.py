"""What a line of a run's metrics.jsonl holds, whichever backend trained it (docs/architecture.md, "metrics.jsonl"):
analysis reads runs by these names only, and never knows the backend."""

# Every line: the step (0: before training, validation only, the rest null) and the training metrics of that step.
METRIC_KEYS = ("step", "reward", "agreement", "entropy", "filtered_frac", "filtered_acc", "labelled_frac",
               "pseudo_label_acc", "rollout_acc", "momentum_agreement", "kl", "loss", "lr", "grad_norm",
               "step_seconds", "rollouts_per_s")
# Lines of the steps that ran validation (step 0, every eval_every steps, the last step).
EVAL_KEYS = ("val_acc", "val_acc_greedy")
