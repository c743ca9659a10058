"""Arrow datasets sharded by the coordinator: exactly once per epoch, resumable, prefetched.

    from dist.data import Dataset, Column, ShardedLoader

    train, val = Dataset("s3://bucket/train/", columns={"image": Column("image", "float32", (3, 32, 32)),
                                                        "label": "int64"}).holdout(0.05, seed=0)
    loader = ShardedLoader(train, coordinator, rank, world_size, batch_size=64, device="cuda")
    for epoch in range(loader.resume_epoch(), epochs):
        loader.set_epoch(epoch)
        for batch in loader:            # {"image": (64, 3, 32, 32), "label": (64,)}
            ...

Modules: sources (where rows live), index (units from metadata), planner (pure epoch plans),
progress (exactly-once bookkeeping), service (all datasets of a job; hosted by the coordinator
through coordination.DataCoordinatorMixin), dataset, columns, loader, prefetch, errors.
"""

from .columns import Column
from .coordination import DataCoordinatorMixin
from .dataset import Dataset
from .errors import (
    BatchSizeError,
    ColumnConversionError,
    DataError,
    DataSourceNotFoundError,
    DataStateError,
    EmptyDatasetError,
    LoaderClosedError,
    MissingColumnError,
    SchemaMismatchError,
    UnsupportedSourceError,
)
from .index import DatasetIndex
from .loader import ShardedLoader
from .planner import EpochPlan, PlanConfig, RankPlan, ShardPlanner
from .progress import DataProgress
from .ranges import RowRanges
from .service import DataService

__all__ = [
    "BatchSizeError", "Column", "ColumnConversionError", "DataCoordinatorMixin", "DataError", "DataProgress",
    "DataService", "DataSourceNotFoundError", "DataStateError", "Dataset", "DatasetIndex", "EmptyDatasetError",
    "EpochPlan", "LoaderClosedError", "MissingColumnError", "PlanConfig", "RankPlan", "RowRanges",
    "SchemaMismatchError", "ShardPlanner", "ShardedLoader", "UnsupportedSourceError",
]
