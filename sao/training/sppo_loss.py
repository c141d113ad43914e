"""Soft SPPO: the one loss sao writes, as a small subclass of TRL's DPO trainer.

SPPO (Wu et al., 2024) regresses each answer's log-ratio to the reference on its estimated win
probability against the policy: for a pair (y_w, y_l) with P_win, P_lose (the answers' scores,
the row means of the run's P),

    loss = ½ · [ (log π/π_ref (y_w) − (P_win − ½)/β)² + (log π/π_ref (y_l) − (P_lose − ½)/β)² ]

as in uclaml/SPPO's trainer (the ½ is theirs). TRL's `sppo_hard` is this loss with P_win = 1
and P_lose = 0. The reference log-probs are computed once before training, so π_ref is never
held beside the policy while it trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

PROBS = ("p_win", "p_lose")


def soft_sppo_loss(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    p_win: torch.Tensor,
    p_lose: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """The batch's mean soft SPPO loss from the two answers' log-ratios to the reference."""
    chosen_error = (chosen_logratios - (p_win - 0.5) / beta) ** 2
    rejected_error = (rejected_logratios - (p_lose - 0.5) / beta) ** 2
    return ((chosen_error + rejected_error) / 2).mean()


@dataclass
class WinProbabilityCollator(DataCollatorForPreference):
    """TRL's preference collator, carrying each row's P_win and P_lose into the batch."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        for key in PROBS:
            batch[key] = torch.tensor([example[key] for example in examples], dtype=torch.float32)
        return batch


class SoftSPPOTrainer(DPOTrainer):
    """DPOTrainer whose loss is soft SPPO's; needs `precompute_ref_log_probs=True`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs["args"]
        if not config.precompute_ref_log_probs:
            raise ValueError("soft SPPO reads the reference log-probs precomputed")
        tokenizer = kwargs["processing_class"]
        pad = tokenizer.pad_token or tokenizer.eos_token
        tokenizer.pad_token = pad
        kwargs.setdefault(
            "data_collator",
            WinProbabilityCollator(
                pad_token_id=tokenizer.pad_token_id,
                max_length=config.max_length,
                truncation_mode=config.truncation_mode,
                pad_to_multiple_of=config.pad_to_multiple_of,
            ),
        )
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns = [*self._signature_columns, *PROBS]

    def compute_ref_log_probs(self, model, inputs):
        """TRL's reference pass, without the win probabilities (not model inputs)."""
        return super().compute_ref_log_probs(model, _model_inputs(inputs))

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            use_cache=False,
            labels=labels,
            fused_lm_head=True,
        )
        seq_len = completion_mask.size(1) - 1  # log-probs of tokens 1.., as TRL's head gives
        logps = outputs.log_probs[:, -seq_len:].sum(dim=1)
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)
        chosen_logratios = chosen_logps - inputs["ref_chosen_logps"]
        rejected_logratios = rejected_logps - inputs["ref_rejected_logps"]
        loss = soft_sppo_loss(
            chosen_logratios, rejected_logratios, inputs["p_win"], inputs["p_lose"], self.beta
        )
        chosen_rewards = self.beta * chosen_logratios.detach()
        rejected_rewards = self.beta * rejected_logratios.detach()
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(chosen_rewards.mean().item())
        metrics["rewards/rejected"].append(rejected_rewards.mean().item())
        wins = (chosen_rewards > rejected_rewards).float()
        metrics["rewards/accuracies"].append(wins.mean().item())
        metrics["rewards/margins"].append((chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(chosen_logps.detach().mean().item())
        metrics["logps/rejected"].append(rejected_logps.detach().mean().item())
        return (loss, outputs) if return_outputs else loss


def _model_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A batch without the columns that only the loss reads."""
    return {key: value for key, value in inputs.items() if key not in PROBS}
