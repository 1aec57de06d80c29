"""Synthetic toy reasoning task and the tiny char-level Hugging Face model used by the CPU trainer."""
