"""`sao iterate`: self-improvement rounds (generate → train → evaluate) and their ledger.

Above stages, engines, store, training and the report's embeddings; below the CLI.
"""

from sao.rounds.config import IterateFile, load_iterate_config
from sao.rounds.loop import iterate

__all__ = ["IterateFile", "iterate", "load_iterate_config"]
