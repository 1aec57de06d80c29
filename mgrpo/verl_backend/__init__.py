"""verl backend: SRT, Intuitor, M-GRPO, M-GRPO+IQR (and any registered method) on stock verl 0.9.1.

Import-light: verl is imported only by the modules that need it (verl_trainer, workers, checkpoint conversion),
so the CLI and the pure stages work without a GPU. See docs/verl_backend.md.
"""
