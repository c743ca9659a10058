"""Sources, the metadata index, column conversion, and the errors raised before training."""

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from dist.data import (
    BatchSizeError,
    Column,
    ColumnConversionError,
    Dataset,
    DataSourceNotFoundError,
    EmptyDatasetError,
    MissingColumnError,
    SchemaMismatchError,
    ShardedLoader,
    UnsupportedSourceError,
)


def id_table(start, stop):
    ids = np.arange(start, stop)
    return pa.table({"id": ids, "x": ids.astype(np.float32) / 2, "name": [f"row{i}" for i in ids]})


def read_all(dataset):
    """Every row of a dataset in index order, through its own reader (no plan)."""
    rows = dataset.rows()
    reader = dataset.reader()
    pieces = [dataset.read(reader, *rows.cut_at(dataset.index.offsets))]
    reader.close()
    return pieces[0]


@pytest.fixture
def parquet_dir(tmp_path):
    """Three Parquet files of 37, 50 and 14 rows in row groups of 10; 101 rows in all."""
    bounds = [0, 37, 87, 101]
    for i in range(3):
        pq.write_table(id_table(bounds[i], bounds[i + 1]), tmp_path / f"part-{i}.parquet", row_group_size=10)
    (tmp_path / "_SUCCESS").write_text("")
    return tmp_path


def test_parquet_directory_is_indexed_by_row_group(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id", "x"])
    assert dataset.index.num_rows == 101
    assert dataset.index.num_units == 4 + 5 + 2
    assert read_all(dataset)["id"].tolist() == list(range(101))


def test_parquet_index_reads_no_data_pages(parquet_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("index building read row data")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", refuse)
    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    assert Dataset(parquet_dir).index.num_rows == 101


def test_max_unit_rows_splits_row_groups(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id"], max_unit_rows=4)
    assert dataset.index.unit_rows.max() <= 4
    assert read_all(dataset)["id"].tolist() == list(range(101))


def test_hive_partitions_become_columns(tmp_path):
    for year, (start, stop) in {2023: (0, 20), 2024: (20, 45)}.items():
        folder = tmp_path / f"year={year}" / "split=a b"
        folder.mkdir(parents=True)
        pq.write_table(id_table(start, stop), folder / "data.parquet")
    dataset = Dataset(tmp_path, columns={"id": "int64", "year": "int32", "split": None})
    batch = read_all(dataset)
    assert batch["year"].tolist() == [2023] * 20 + [2024] * 25
    assert batch["year"].dtype == np.int32 and set(batch["split"]) == {"a b"}


def test_ipc_and_feather_by_record_batch(tmp_path):
    table = id_table(0, 55)
    feather.write_feather(table, tmp_path / "a.feather", chunksize=20)
    dataset = Dataset(tmp_path / "a.feather", columns=["id", "name"])
    assert dataset.index.unit_rows.tolist() == [20, 20, 15]
    batch = read_all(dataset)
    assert batch["id"].tolist() == list(range(55)) and batch["name"][3] == "row3"


def test_csv_directory(tmp_path):
    pacsv.write_csv(id_table(0, 12), tmp_path / "a.csv")
    pacsv.write_csv(id_table(12, 30), tmp_path / "b.csv")
    dataset = Dataset(tmp_path, columns={"id": "int64", "x": "float32"})
    assert read_all(dataset)["id"].tolist() == list(range(30))


def test_in_memory_table_and_numpy_dict():
    dataset = Dataset(id_table(0, 25), columns=["id"], part_rows=7)
    assert dataset.index.unit_rows.tolist() == [7, 7, 7, 4]
    images = np.arange(10 * 3 * 4 * 4, dtype=np.uint8).reshape(10, 3, 4, 4)
    dataset = Dataset({"image": images, "label": np.arange(10)})
    batch = read_all(dataset)
    assert batch["image"].shape == (10, 3, 4, 4) and np.array_equal(batch["image"], images)


def test_file_uri(parquet_dir):
    assert Dataset(f"file://{parquet_dir}", columns=["id"]).index.num_rows == 101


# column conversion


def test_fixed_size_list_and_binary_images_reshape_without_copies():
    pixels = np.arange(6 * 2 * 2 * 2, dtype=np.uint8).reshape(6, 2, 2, 2)
    table = pa.table({
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1).astype(np.float32)), 8),
        "img": pa.array([p.tobytes() for p in pixels], pa.binary()),
        "label": pa.array(np.arange(6)),
    })
    dataset = Dataset(table, columns={"vec": Column("vec", shape=(2, 2, 2)), "img": Column("img", "uint8", (2, 2, 2)),
                                      "label": "int32"})
    reader = dataset.reader()
    batch = dataset.read(reader, np.array([1]), np.array([5]))
    assert batch["vec"].shape == batch["img"].shape == (4, 2, 2, 2)
    assert np.array_equal(batch["img"], pixels[1:5]) and np.array_equal(batch["vec"], pixels[1:5].astype(np.float32))
    assert batch["label"].dtype == np.int32
    assert not batch["img"].flags.owndata and not batch["img"].flags.writeable  # a view of Arrow memory


def test_binary_of_the_wrong_size_names_the_column():
    table = pa.table({"img": pa.array([b"abcd", b"abc"])})
    dataset = Dataset(table, columns={"img": Column("img", shape=(2, 2))})
    with pytest.raises(ColumnConversionError, match="column 'img': an item has 3 bytes but shape=\\(2, 2\\)"):
        read_all(dataset)


def test_nulls_in_an_integer_column_are_refused_unless_read_as_float():
    table = pa.table({"n": pa.array([1, None, 3])})
    with pytest.raises(ColumnConversionError, match="column 'n' \\(int64\\) has 1 null values.*dtype='float32'"):
        read_all(Dataset(table))
    assert np.isnan(read_all(Dataset(table, columns={"n": "float32"}))["n"][1])


# errors before training


def test_missing_path():
    with pytest.raises(DataSourceNotFoundError, match="'/no/such/dir' does not exist"):
        Dataset("/no/such/dir")


def test_empty_directory_and_empty_file(tmp_path):
    with pytest.raises(EmptyDatasetError, match="holds no data files"):
        Dataset(tmp_path)
    pq.write_table(id_table(0, 0), tmp_path / "empty.parquet")
    with pytest.raises(EmptyDatasetError, match="has no rows"):
        Dataset(tmp_path)


def test_missing_column_names_the_available_ones(parquet_dir):
    with pytest.raises(MissingColumnError, match="'label' not in the dataset; available: id, x, name"):
        Dataset(parquet_dir, columns=["id", "label"])


def test_schema_mismatch_names_file_and_field(tmp_path):
    pq.write_table(id_table(0, 10), tmp_path / "a.parquet")
    pq.write_table(id_table(10, 20).set_column(1, "x", pa.array(np.arange(10.0))), tmp_path / "b.parquet")
    pq.write_table(id_table(20, 30).drop_columns(["name"]), tmp_path / "c.parquet")
    with pytest.raises(SchemaMismatchError, match=r"field 'x' is double in file '.*b\.parquet' but float"):
        Dataset(tmp_path, columns=["id", "x"])
    with pytest.raises(SchemaMismatchError, match=r"file '.*c\.parquet' has no field 'name'"):
        Dataset(tmp_path, columns=["name"])
    assert Dataset(tmp_path, columns=["id"]).index.num_rows == 30  # agreeing columns still load


def test_batch_larger_than_a_ranks_share(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id"])
    with pytest.raises(BatchSizeError, match="batch_size=40 .* 101 rows over world_size=3 .* 33 rows per rank"):
        ShardedLoader(dataset, None, 0, 3, batch_size=40)


def test_mixed_formats_and_unknown_sources(tmp_path):
    pq.write_table(id_table(0, 5), tmp_path / "a.parquet")
    pacsv.write_csv(id_table(0, 5), tmp_path / "b.csv")
    with pytest.raises(UnsupportedSourceError, match="mixes formats .*pass format="):
        Dataset(tmp_path)
    assert Dataset(tmp_path, format="csv").index.num_rows == 5
    with pytest.raises(UnsupportedSourceError, match="cannot read a dataset from list"):
        Dataset([1, 2, 3])
    with pytest.raises(UnsupportedSourceError, match="format='orc' is not one of"):
        Dataset(tmp_path, format="orc")


def test_holdout_too_small_is_an_error(parquet_dir):
    dataset = Dataset(parquet_dir, columns=["id"])
    with pytest.raises(EmptyDatasetError, match="puts 0 in the holdout"):
        dataset.holdout(0.01, by="unit")
    train, held = dataset.holdout(0.01, by="row")
    assert (train.num_rows, held.num_rows) == (100, 1)
    assert held.name == "train.holdout"
