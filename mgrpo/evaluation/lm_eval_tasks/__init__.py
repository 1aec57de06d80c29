"""lm-eval task YAMLs of mgrpo-bench (loaded by mgrpo.evaluation.lm_eval_runner through lm-eval's TaskManager)."""
