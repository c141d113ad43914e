"""The dtype the engine tests run in, and the tolerances an exactness check may use in it.

`SAO_TEST_DTYPE=bfloat16 make test` runs the engine tests in bf16 (as every GPU user does);
unset, engines pick their own (`auto`: bf16 on a GPU or a CPU with native bf16, else fp32).

What bf16 cannot promise: the same logits for the same text in another batch (other padding,
other shared-prefix split, other kernel tiling). Its unit roundoff is u = 2^-8, against 2^-24
for fp32, and a 30-layer model's logits move by many u between batch compositions: measured on
the embedded model, a label log-prob moved by 0.012 on a CPU with native bf16 and by up to
0.18 on one that emulates it (no avx512_bf16: bf16 logits near 20 are spaced 0.125 apart), and
a P cell by 0.034 there. Checks of a log-prob's exactness therefore pin fp32; checks of P cells
computed in two different batches allow 32u of the dtype (0.125 in bf16), and never less than
1e-3 (fp32's kernels reorder sums too). Such a check is strict in fp32, the suite's
default here, and only catches gross errors in bf16; what bf16 must get right is the record's
own consistency, which the recounts check exactly in any dtype.
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
    return max(1e-3, 32 * UNIT_ROUNDOFF[effective_dtype(dtype)])


def reference_tolerance(dtype: str = TEST_DTYPE) -> float:
    """Largest difference allowed between what an engine computed in `dtype` and a plain fp32
    reference: 64 units of the dtype's roundoff (0.25 in bf16, where a label log-prob of the
    embedded model's judge moved by 0.13 against fp32 on a CPU with native bf16); each check
    keeps its own floor for fp32's reordered sums."""
    return 64 * UNIT_ROUNDOFF[effective_dtype(dtype)]
