"""The dtype the engine tests run in, and the tolerances an exactness check may use in it.

`SAO_TEST_DTYPE=bfloat16 make test` runs the engine tests in bf16 (as every GPU user does);
unset, engines pick their own (`auto`: bf16 on a GPU or a CPU with native bf16, else fp32).

What bf16 cannot promise: the same logits for the same text in another batch (other padding,
other shared-prefix split, other kernel tiling). Its unit roundoff is u = 2^-8, against 2^-24
for fp32, and a 30-layer model's logits move by a few u between batch compositions (measured on
the embedded model: 0.012 in a label log-prob, 0.01 in a P cell). A check that compares values
computed in two different batches therefore allows 8u of the dtype (0.031 in bf16), and never
less than 1e-3 (fp32's kernels reorder sums too); a P cell moves by at most a quarter of its
logit-difference error, so the same bound holds for P with room to spare.
"""

from __future__ import annotations

import os

from sao.engines.hardware import resolve_dtype

TEST_DTYPE = os.environ.get("SAO_TEST_DTYPE", "auto")
UNIT_ROUNDOFF = {"float32": 2.0**-24, "bfloat16": 2.0**-8, "float16": 2.0**-11}


def effective_dtype(dtype: str = TEST_DTYPE) -> str:
    """What the engines run in here (`auto`: bf16 on a GPU or a CPU with native bf16)."""
    return resolve_dtype(dtype)


def batch_tolerance(dtype: str = TEST_DTYPE) -> float:
    """Largest difference allowed between a log-prob or P cell computed in two batches."""
    return max(1e-3, 8 * UNIT_ROUNDOFF[effective_dtype(dtype)])
