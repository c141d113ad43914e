"""An optimizer that lives outside sao, as `train.command` runs one: it reads TRL-format
preference parquet files and trains with TRL's own DPOTrainer, importing nothing of sao.

python tests/external_dpo.py DATA_DIR MODEL OUT [--steps N] [--exit CODE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--exit", type=int, default=0, help="fail with this status, untrained")
    args = parser.parse_args()
    if args.exit:
        print(f"external optimizer: failing with status {args.exit} as asked")
        return args.exit
    files = {"train": str(Path(args.data) / "train.parquet")}
    data = datasets.load_dataset("parquet", data_files=files)["train"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = DPOConfig(
        output_dir=tempfile.mkdtemp(),  # its scratch, not the model folder
        max_steps=args.steps,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_length=128,
        bf16=torch.cuda.is_available(),  # TRL's default bf16 fails on a CPU
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"external optimizer: {args.steps} steps, saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
