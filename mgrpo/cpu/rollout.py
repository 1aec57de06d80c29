"""KV-cached sampling and sequence log-probabilities for small HF causal LMs on CPU.

Prompts are left-padded so every response starts in the same column; position ids come
from the attention mask, so padding never shifts a prompt's positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollouts:
    prompt_ids: torch.Tensor       # [B, P] left-padded prompt tokens
    prompt_mask: torch.Tensor      # [B, P] 1 on real prompt tokens
    response_ids: torch.Tensor     # [B, L] sampled tokens, pad after <eos>
    response_mask: torch.Tensor    # [B, L] 1 on generated tokens up to and including <eos>
    sampling_logits: torch.Tensor  # [B, L, V] logits / T of the model that sampled (the sampling distribution)


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


@torch.no_grad()
def sample(model, prompts: list[list[int]], *, temperature: float, max_new_tokens: int,
           eos_id: int, pad_id: int, generator: torch.Generator | None = None,
           greedy: bool = False) -> Rollouts:
    """One response per prompt row (repeat prompts for several samples), KV-cached."""
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    prompt_ids, prompt_mask = left_pad(prompts, pad_id)
    batch = prompt_ids.shape[0]
    attention = prompt_mask.clone()
    positions = positions_from_mask(prompt_mask)
    out = model(input_ids=prompt_ids, attention_mask=attention, position_ids=positions, use_cache=True)
    past, next_logits = out.past_key_values, out.logits[:, -1, :].float()
    last_position = positions[:, -1:]

    tokens, masks, logits_steps = [], [], []
    finished = torch.zeros(batch, dtype=torch.bool)
    for _ in range(max_new_tokens):
        scaled = next_logits / (1.0 if greedy else temperature)
        if greedy:
            token = scaled.argmax(dim=-1)
        else:
            token = torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator).squeeze(1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        tokens.append(token)
        masks.append((~finished).long())
        logits_steps.append(scaled)
        finished = finished | (token == eos_id)
        if bool(finished.all()):
            break
        attention = torch.cat([attention, torch.ones((batch, 1), dtype=attention.dtype)], dim=1)
        last_position = last_position + 1
        out = model(input_ids=token[:, None], attention_mask=attention, position_ids=last_position,
                    past_key_values=past, use_cache=True)
        past, next_logits = out.past_key_values, out.logits[:, -1, :].float()

    return Rollouts(prompt_ids, prompt_mask, torch.stack(tokens, dim=1), torch.stack(masks, dim=1),
                    torch.stack(logits_steps, dim=1))


def response_logits(model, rollouts: Rollouts, temperature: float) -> torch.Tensor:
    """Logits / T at every response position, [B, L, V], recomputed in one full forward pass."""
    ids = torch.cat([rollouts.prompt_ids, rollouts.response_ids], dim=1)
    mask = torch.cat([rollouts.prompt_mask, torch.ones_like(rollouts.response_ids)], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
    start = rollouts.prompt_ids.shape[1]
    return logits[:, start - 1:-1, :].float() / temperature


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def decode_responses(tokenizer, rollouts: Rollouts) -> list[str]:
    texts = []
    for ids, mask in zip(rollouts.response_ids.tolist(), rollouts.response_mask.tolist()):
        kept = [t for t, m in zip(ids, mask) if m]
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    return [tokenizer(p)["input_ids"] for p in prompts]


@torch.no_grad()
def accuracy(model, tokenizer, rows: list[dict], *, temperature: float, samples: int,
             max_new_tokens: int, generator: torch.Generator | None = None, greedy: bool = False,
             batch_prompts: int = 256) -> float:
    """Mean fraction of correct responses over ``samples`` responses per row (1 when greedy)."""
    from mgrpo.toy.task import is_correct

    samples = 1 if greedy else samples
    was_training = model.training
    model.eval()
    correct = total = 0
    for start in range(0, len(rows), batch_prompts):
        chunk = rows[start:start + batch_prompts]
        prompts = [ids for ids in encode_prompts(tokenizer, [r["prompt"] for r in chunk]) for _ in range(samples)]
        rollouts = sample(model, prompts, temperature=temperature, max_new_tokens=max_new_tokens,
                          eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                          generator=generator, greedy=greedy)
        texts = decode_responses(tokenizer, rollouts)
        answers = [r["answer"] for r in chunk for _ in range(samples)]
        correct += sum(is_correct(t, a) for t, a in zip(texts, answers))
        total += len(texts)
    model.train(was_training)
    return correct / total
