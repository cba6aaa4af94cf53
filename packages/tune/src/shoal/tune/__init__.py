"""shoal.tune: Hyperparameter search with Ray Tune's API.

Not built yet. This package will hold:

Tuner runs trials of a trainable over a search space, proposed by search algorithms
(random, grid, Optuna, HyperOpt, BOHB) and stopped or promoted by schedulers
(FIFO, ASHA, HyperBand, median stopping, PBT); experiments are resumable.
"""

from shoal.tune._version import __version__

__all__ = ["__version__"]
