"""Tiny char-level decoder-only model in Hugging Face format.

The tokenizer is built locally with the ``tokenizers`` library (one token per character,
plus ``<pad> <bos> <eos> <unk>``) and wrapped as a ``PreTrainedTokenizerFast``; the model
is a small ``LlamaConfig``. Both are saved with ``save_pretrained`` so that
``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(dir)`` load toy checkpoints
exactly like real ones. Encoding a prompt adds ``<bos>``; a response ends with ``<eos>``.
"""
from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from mgrpo.toy.settings import ModelSize

# Every character the toy task can produce (prompt and response), plus a few spares.
CHARACTERS = "0123456789+-*=#, "
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def build_tokenizer(characters: str = CHARACTERS) -> PreTrainedTokenizerFast:
    specials = list(SPECIAL_TOKENS.values())
    vocab = {token: i for i, token in enumerate(specials + sorted(set(characters)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per char
    core.decoder = decoders.Fuse()  # join characters without spaces
    bos = SPECIAL_TOKENS["bos_token"]
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=core, padding_side="left", **SPECIAL_TOKENS)


def build_model(tokenizer: PreTrainedTokenizerFast, size: ModelSize = ModelSize(),
                seed: int = 0) -> LlamaForCausalLM:
    import torch

    size.validate()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_attention_heads,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        attn_implementation="eager",  # masked left-padding rows stay finite; speed is equal at this size
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
