"""Training on a run's pairs (`sao train`): TRL's losses, sao's soft SPPO, or an outside
command, into a complete checkpoint folder with its lineage.

Above stages, engines, store and adapters; below the CLI.
Modules: `config.py` (the `train:` section), `data.py` (the rows each algorithm reads),
`trl_trainers.py`, `sppo_loss.py`, `external.py` (one per kind of trainer), `checkpoint.py`
(the folder, its lineage, resume), `train.py` (the command).
"""

from sao.training.config import ALGOS, TrainConfig, load_train_config
from sao.training.train import Trained, train

__all__ = ["ALGOS", "TrainConfig", "Trained", "load_train_config", "train"]
