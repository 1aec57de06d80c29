"""Shared helpers of the evaluation tests (tiny local models, scripted generators, fixture data files).

Other test_eval_* files import from here. Fixture data uses each source's real column names but synthetic
content (never real GPQA text).
"""
from __future__ import annotations

import json
import re
from pathlib import Path


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ------------------------------------------------------------------ fixture data (synthetic rows)

MATH500_ROWS = [  # columns of HuggingFaceH4/MATH-500
    {"problem": "What is $1/2 + 1/4$?", "solution": "$\\boxed{\\frac34}$", "answer": "\\frac{3}{4}",
     "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"},
    {"problem": "Solve $2x = 10$.", "solution": "$\\boxed{5}$", "answer": "5",
     "subject": "Algebra", "level": 1, "unique_id": "test/algebra/2.json"},
    {"problem": "For which $x$ is $x \\le 3$?", "solution": "$\\boxed{(-\\infty,3]}$", "answer": "(-\\infty, 3]",
     "subject": "Algebra", "level": 2, "unique_id": "test/algebra/3.json"},
    {"problem": "List the roots of $(x-1)(x-2)$.", "solution": "$\\boxed{1,2}$", "answer": "1, 2",
     "subject": "Algebra", "level": 2, "unique_id": "test/algebra/4.json"},
]
AIME24_ROWS = [{"ID": f"2024-I-{i}", "Problem": f"Compute {i} times 7.", "Solution": "...", "Answer": 7 * i}
               for i in range(1, 6)]
AIME25_ROWS = [{"problem": f"Compute {i} plus 100.", "answer": 100 + i, "id": str(i)} for i in range(5)]
GPQA_ROWS = [  # GPQA's column names, made-up content
    {"Record ID": f"rec{i}", "Question": f"Synthetic question number {i}: which option is the sentinel?",
     "Correct Answer": f"sentinel-{i}", "Incorrect Answer 1": f"decoy-{i}-a",
     "Incorrect Answer 2": f"decoy-{i}-b", "Incorrect Answer 3": f"decoy-{i}-c"} for i in range(6)]
MMLU_PRO_GOLDS = "GJCF"  # beyond D on purpose: a grader that knew only 4 options would mark G, J, F wrong
MMLU_PRO_ROWS = [
    {"question_id": 100 + i, "question": f"Synthetic MMLU-Pro question {i}?",
     "options": [f"opt{j}" for j in range(10)], "answer": gold, "answer_index": "ABCDEFGHIJ".index(gold),
     "cot_content": "", "category": "test", "src": "synthetic"} for i, gold in enumerate(MMLU_PRO_GOLDS)]

FIXTURE_ROWS = {"math500": MATH500_ROWS, "aime24": AIME24_ROWS, "aime25": AIME25_ROWS,
                "gpqa_diamond": GPQA_ROWS, "gpqa": GPQA_ROWS, "mmlu_pro": MMLU_PRO_ROWS}


def write_fixture_data(data_dir: Path) -> Path:
    from mgrpo.evaluation.benchmarks import BENCHMARKS

    for benchmark, rows in FIXTURE_ROWS.items():
        write_jsonl(data_dir / BENCHMARKS[benchmark].source.filename, rows)
    return data_dir


# ------------------------------------------------------------------ scripted generator

def user_message(prompt: str) -> str:
    """The user turn of a prompt rendered by ScriptedGenerator.apply_chat_template."""
    match = re.search(r"<user>(.*?)</user>", prompt, re.DOTALL)
    assert match, f"prompt has no user turn: {prompt!r}"
    return match.group(1)


class ScriptedGenerator:
    """A fake model: ``respond(user_text, sample_index)`` decides each of the n responses of a prompt."""

    backend = "scripted"

    def __init__(self, respond, name: str = "scripted-model"):
        self.respond = respond
        self.name = name
        self.calls: list[tuple[list[str], int, object]] = []

    def apply_chat_template(self, messages, add_generation_prompt=True):
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def generate(self, prompts, n, params):
        self.calls.append((list(prompts), n, params))
        return [[self.respond(user_message(p), j) for j in range(n)] for p in prompts]


# ------------------------------------------------------------------ tiny local HF model with a chat template

def build_chat_tokenizer():
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    chars = sorted(set(chr(c) for c in range(32, 127)) | {"\n"})
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<unk>", padding_side="left")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_chat_model(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_chat_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_toy_model(path: Path, seed: int = 0) -> Path:
    from mgrpo.toy import model as toy_model
    tokenizer = toy_model.build_tokenizer()
    toy_model.build_model(tokenizer, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_chat_tokenizer_round_trips_text_and_keeps_special_tokens_whole():
    tokenizer = build_chat_tokenizer()
    text = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 2
    assert tokenizer.decode(ids) == text


def test_scripted_generator_sees_the_user_turn():
    gen = ScriptedGenerator(lambda text, j: f"{text}:{j}")
    prompt = gen.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
    assert gen.generate([prompt], 2, None) == [["Q:0", "Q:1"]]
