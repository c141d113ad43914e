"""Bare transformers: the requests of a sao run through `generate` and plain forward passes.

Generation: batches of `batch_size` conversations in the order given, left padding,
`num_return_sequences=n`, the generator seeded with the batch's first recorded seed; tokens
counted up to the first end-of-turn token. Judge: one forward per batch, the labels'
log-probabilities at the last position. No sao, and no prefix sharing (sao's hf engine runs a
shared prefix once and copies its KV cache; transformers keeps no cache across calls).
Usage: python benchmarks/bare_hf.py REQUESTS.json   (prints one JSON line)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from bare_common import Clock, Stage, label_ids, load_requests, run_stages


def main() -> None:
    request = load_requests(sys.argv[1])
    settings = request["settings"]
    clock = Clock()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    clock.phase("import")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(request["model"], padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        request["model"], dtype=getattr(torch, settings["dtype"][device])
    )
    model.to(device).eval()
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    size = settings["batch_size"]
    clock.phase("engine_start")

    def batches(conversations: list) -> Iterator[tuple[int, dict]]:
        """(index of the first conversation, encoded batch) per batch of `size`."""
        for start in range(0, len(conversations), size):
            texts = [
                tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                for c in conversations[start : start + size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            yield start, enc.to(device)

    def chat(stage: Stage) -> int:
        sample = stage["temperature"] > 0
        tokens = 0
        for start, enc in batches(stage["conversations"]):
            torch.manual_seed(stage["seeds"][start])
            with torch.inference_mode():
                seqs = model.generate(
                    **enc,
                    do_sample=sample,
                    temperature=stage["temperature"] if sample else None,
                    top_p=stage["top_p"] if sample else None,
                    top_k=None,
                    max_new_tokens=stage["max_tokens"],
                    num_return_sequences=stage["n"],
                    pad_token_id=tokenizer.pad_token_id,
                )
            for row in seqs[:, enc["input_ids"].shape[1] :].tolist():
                tokens += next((k for k, t in enumerate(row) if t in eos), len(row))
        return tokens

    def judge(stage: Stage) -> int:
        ids = label_ids(tokenizer, stage["labels"])
        answered = 0
        for _, enc in batches(stage["conversations"]):
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = model(**enc, position_ids=positions, logits_to_keep=1).logits[:, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)[:, ids]
            answered += int(torch.isfinite(logp).all(dim=-1).sum())
        return answered

    run_stages(request, clock, chat, judge, dtype=settings["dtype"][device])


if __name__ == "__main__":
    main()
