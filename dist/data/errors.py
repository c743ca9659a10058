"""Every exception dist.data raises, in one place.

Each class also derives from the builtin a caller would naturally catch (a missing path is a
FileNotFoundError, a bad argument a ValueError), so code written against the builtins keeps working.
Messages name the offending value and say what to do about it.
"""


class DataError(Exception):
    """Base class of all dist.data errors."""


class DataSourceNotFoundError(DataError, FileNotFoundError):
    """A path or URI given as a dataset source does not exist."""


class UnsupportedSourceError(DataError, ValueError):
    """The source's type, format or filesystem is not one dist.data can read."""


class EmptyDatasetError(DataError, ValueError):
    """The source holds no files or no rows (or a split leaves one side empty)."""


class MissingColumnError(DataError, ValueError):
    """A requested column is not in the dataset's schema."""


class SchemaMismatchError(DataError, ValueError):
    """Two files of one dataset disagree on a field's presence or type."""


class ColumnConversionError(DataError, ValueError):
    """A column's values cannot become the requested NumPy dtype or shape."""


class BatchSizeError(DataError, ValueError):
    """The batch size does not fit each rank's share of the dataset."""


class DataStateError(DataError, ValueError):
    """A saved data state (progress, checkpoint) does not match this dataset or is malformed."""


class LoaderClosedError(DataError, RuntimeError):
    """The loader was used after close()."""
