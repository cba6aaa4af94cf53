"""shoal.train.xgboost: distributed xgboost training (needs the ``xgboost`` extra).

``XGBoostTrainer`` runs a training function on N workers joined in xgboost's
own collective (a RabitTracker in the driver); ``ShoalTrainReportCallback``
reports each boosting round's metrics and checkpoints the model.
"""

from shoal.train.xgboost.callback import RayTrainReportCallback, ShoalTrainReportCallback
from shoal.train.xgboost.config import XGBoostConfig
from shoal.train.xgboost.xgboost_trainer import XGBoostTrainer

__all__ = ["RayTrainReportCallback", "ShoalTrainReportCallback", "XGBoostConfig", "XGBoostTrainer"]
