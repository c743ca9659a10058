"""tensor.save / tensor.load: bit-exact round trips, the safetensors layout, and refusing bad or hostile files."""
import hashlib
import io
import json
import math
import os
import pickle
import struct

import numpy as np
import pytest

import tensor
from tensor import SerializationError
from tensor import serialization as ser
from tensor.serialization._format import MAX_DEPTH

ALL_DTYPES = ["float32", "float16", "float64", "int32", "int64", "uint8", "int8", "int16", "bool"]


def sample_state(rng):
    arrays = {name: (rng.standard_normal((3, 4)) * 100).astype(name) for name in ALL_DTYPES}
    tensors = {name: tensor.tensor(array) for name, array in arrays.items()}
    return {
        "model": {"layer.weight": tensors["float32"], "layer.bias": tensor.tensor(np.float32(1.5)),
                  "empty": tensor.zeros(0, 3), "transposed": tensor.tensor(arrays["float64"]).T},
        "dtypes": tensors,
        "optimizer": {"state": {0: {"step": 7, "exp_avg": tensors["float16"]}, 1: {}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 1]}]},
        "scalars": [None, True, False, 0, -(2**70), 3.25, math.inf, -0.0, "naïve ✓", ""],
        (1.5): "float key", None: "none key", True: "bool key",
    }


def assert_same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, tensor.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.data, b.data)
        assert a.data.tobytes() == np.ascontiguousarray(b.data).tobytes()  # bit-exact, -0.0 and NaN included
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert type(key) is type(list(b)[list(a).index(key)])
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def test_round_trip_is_bit_exact(tmp_path, rng):
    state = sample_state(rng)
    tensor.save(state, tmp_path / "state.safetensors")
    loaded = tensor.load(tmp_path / "state.safetensors")
    assert_same(loaded, state)


def test_top_level_values_and_nan(tmp_path):
    for value in [tensor.tensor([1.0, math.nan]), [1, (2, [3])], 5, "text", None, {}]:
        tensor.save(value, tmp_path / "v")
        assert_same(tensor.load(tmp_path / "v"), value)


def test_loaded_tensors_are_writable_and_keep_requires_grad(tmp_path):
    weight = tensor.tensor([1.0, 2.0], requires_grad=True)
    tensor.save({"w": weight, "i": tensor.tensor([1, 2])}, tmp_path / "f")
    loaded = tensor.load(tmp_path / "f")
    assert loaded["w"].requires_grad and not loaded["i"].requires_grad
    loaded["i"].data[0] = 5
    loaded["w"].data[:] = 0


def test_a_tensor_saved_twice_loads_as_one_object(tmp_path):
    shared = tensor.tensor([1.0, 2.0])
    tensor.save({"a": shared, "b": [shared]}, tmp_path / "f")
    loaded = tensor.load(tmp_path / "f")
    assert loaded["a"] is loaded["b"][0]


def test_numpy_arrays_and_scalars(tmp_path):
    tensor.save({"array": np.arange(6).reshape(2, 3), "scalar": np.float32(0.5), "n": np.int64(3)}, tmp_path / "f")
    loaded = tensor.load(tmp_path / "f")
    np.testing.assert_array_equal(loaded["array"], np.arange(6).reshape(2, 3))
    assert loaded["scalar"] == 0.5 and loaded["n"] == 3


def test_a_large_tensor_round_trips(tmp_path, rng):
    big = tensor.tensor(rng.standard_normal((1024, 1024)).astype(np.float32))
    tensor.save({"big": big}, tmp_path / "f")
    np.testing.assert_array_equal(tensor.load(tmp_path / "f")["big"].data, big.data)


# ------------------------------------------------------------------------------------ the layout


def read_header(path):
    raw = open(path, "rb").read()
    (size,) = struct.unpack("<Q", raw[:8])
    return raw, size, json.loads(raw[8:8 + size])


def test_layout_is_safetensors(tmp_path, rng):
    tensor.save(sample_state(rng), tmp_path / "f")
    raw, size, header = read_header(tmp_path / "f")
    assert (8 + size) % 8 == 0
    metadata = header.pop("__metadata__")
    assert all(isinstance(v, str) for v in metadata.values())
    assert metadata["format"] == "raygrad" and len(metadata["raygrad.sha256"]) == 64
    itemsize = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "I16": 2, "U8": 1, "I8": 1, "BOOL": 1}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        assert begin % itemsize[entry["dtype"]] == 0, name
    assert max(e["data_offsets"][1] for e in header.values()) == len(raw) - 8 - size
    assert header["model.layer.weight"]["shape"] == [3, 4]


def test_safetensors_reads_our_file(tmp_path, rng):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    state = sample_state(rng)
    tensor.save(state, tmp_path / "f.safetensors")
    arrays = safetensors_numpy.load_file(str(tmp_path / "f.safetensors"))
    np.testing.assert_array_equal(arrays["model.layer.weight"], state["model"]["layer.weight"].data)
    np.testing.assert_array_equal(arrays["model.transposed"], state["model"]["transposed"].data)
    np.testing.assert_array_equal(arrays["dtypes.bool"], state["dtypes"]["bool"].data)


def test_we_read_a_safetensors_file_as_a_flat_dict(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {"a": np.arange(4, dtype=np.int32), "b.c": np.ones((2, 2), np.float16)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "f"), metadata={"note": "theirs"})
    loaded = tensor.load(tmp_path / "f")
    assert sorted(loaded) == ["a", "b.c"]
    np.testing.assert_array_equal(loaded["b.c"].data, arrays["b.c"])


# ----------------------------------------------------------------------------- writing safely


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt"
    tensor.save({"v": 1}, path)
    with pytest.raises(SerializationError, match=r"can't store a object at \['bad'\]"):
        tensor.save({"v": 2, "bad": object()}, path)
    with pytest.raises(SerializationError, match="deeper than"):
        loop = []
        loop.append(loop)
        tensor.save(loop, path)
    assert tensor.load(path) == {"v": 1}
    tensor.save({"v": 3}, str(path))
    assert tensor.load(path) == {"v": 3}
    assert os.listdir(tmp_path) == ["ckpt"]


def test_save_refuses_non_paths(tmp_path):
    with pytest.raises(TypeError, match="file path"):
        tensor.save({}, 42)


def test_file_objects_round_trip_as_in_torch(tmp_path, rng):
    # torch.save(model.state_dict(), io.BytesIO()) and open(..., "rb") files: the same bytes as a path gives
    w = tensor.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    buffer = io.BytesIO()
    tensor.save({"w": w, "step": 3}, buffer)
    tensor.save({"w": w, "step": 3}, tmp_path / "ckpt")
    assert buffer.getvalue() == (tmp_path / "ckpt").read_bytes()
    buffer.seek(0)
    state = tensor.load(buffer, weights_only=True)
    assert state["step"] == 3 and np.array_equal(state["w"].numpy(), w.numpy())
    with open(tmp_path / "ckpt", "rb") as file:
        assert np.array_equal(tensor.load(file, map_location="cpu")["w"].numpy(), w.numpy())
    altered = bytearray(buffer.getvalue())
    altered[-1] ^= 1
    with pytest.raises(SerializationError, match="checksum"):
        tensor.load(io.BytesIO(bytes(altered)))
    with pytest.raises(SerializationError, match="too short"):
        tensor.load(io.BytesIO(b"abc"))
    with open(tmp_path / "ckpt", "r", encoding="latin-1") as text, pytest.raises(TypeError, match="binary mode"):
        tensor.load(text)


# ---------------------------------------------------------------------------- refusing bad files


@pytest.fixture
def saved(tmp_path, rng):
    path = tmp_path / "ckpt.safetensors"
    tensor.save({"w": tensor.tensor(rng.standard_normal((8, 8)).astype(np.float32)), "step": 3}, path)
    return path


def test_truncated_file_is_refused(saved):
    raw = saved.read_bytes()
    for keep in (len(raw) - 1, len(raw) - 100, 40, 7):
        saved.write_bytes(raw[:keep])
        with pytest.raises(SerializationError, match=str(saved.name)):
            tensor.load(saved)


def test_altered_data_byte_fails_the_checksum(saved):
    raw = bytearray(saved.read_bytes())
    raw[-10] ^= 0x01
    saved.write_bytes(bytes(raw))
    with pytest.raises(SerializationError, match="checksum") as info:
        tensor.load(saved)
    assert str(saved) in str(info.value)


def test_altered_header_byte_is_refused(saved):
    raw = saved.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    at = raw.index(b"step", 8)  # inside the structure string: the JSON stays valid, only the checksum sees it
    changed = bytearray(raw)
    changed[at + 2] ^= 0x01
    saved.write_bytes(bytes(changed))
    with pytest.raises(SerializationError, match="checksum"):
        tensor.load(saved)
    for position in range(8, 8 + size, 7):  # any single bit flip in the header is refused, one way or another
        flipped = bytearray(raw)
        flipped[position] ^= 0x04
        saved.write_bytes(bytes(flipped))
        with pytest.raises(SerializationError):
            tensor.load(saved)


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for protocol in (2, 4, 5, 0):
        path = tmp_path / f"evil{protocol}.pt"
        path.write_bytes(pickle.dumps({"weights": Exploit()}, protocol=protocol))
        with pytest.raises(SerializationError, match="pickle|not a safetensors|header") as info:
            tensor.load(path)
        assert str(path) in str(info.value)
    assert not marker.exists()


def test_a_torch_zip_file_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3)}, tmp_path / "model.pt")
    with pytest.raises(SerializationError, match="zip archive"):
        tensor.load(tmp_path / "model.pt")


def test_random_bytes_and_empty_files_are_refused(tmp_path, rng):
    for name, content in [("random", rng.bytes(4096)), ("empty", b""), ("short", b"\x02\x00")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SerializationError):
            tensor.load(tmp_path / name)


def write_file(path, header, data=b"", checksum=False):
    """A file with the given header (a dict, or raw JSON text); `checksum` signs it the way save() does."""
    if checksum:
        header = dict(header)
        header["__metadata__"] = {**header.get("__metadata__", {}), "format": "raygrad", "raygrad.version": "1",
                                  "raygrad.sha256": "0" * 64}
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if checksum:
        digest = hashlib.sha256(raw + data).hexdigest()
        raw = raw.replace(b'"raygrad.sha256":"' + b"0" * 64 + b'"', b'"raygrad.sha256":"' + digest.encode() + b'"')
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("header, data, words", [
    ({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}, bytes(12), "overlaps"),
    ({"a": entry("F32", [4], 0, 16)}, bytes(8), "truncated"),
    ({"a": entry("F32", [-2], 0, 8)}, bytes(8), "dimensions must be integers >= 0"),
    ({"a": entry("F32", [2.5], 0, 10)}, bytes(10), "dimensions"),
    ({"a": entry("BF16", [2], 0, 4)}, bytes(4), "dtype 'BF16'"),
    ({"a": entry("F32", [3], 0, 8)}, bytes(8), "needs 12"),
    ({"a": entry("F32", [1], 4, 8)}, bytes(8), "belong to no tensor"),
    ({"a": entry("F32", [1], 0, 4)}, bytes(8), "belong to no tensor"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, bytes(4), "exactly"),
    ({"a": entry("BOOL", [2], 0, 2)}, b"\x01\x07", "bytes other than 0 and 1"),
    ({"__metadata__": {"k": 5}}, b"", "strings to strings"),
    ('{"a":' + json.dumps(entry("F32", [1], 0, 4)) + ',"a":' + json.dumps(entry("F32", [1], 0, 4)) + "}",
     bytes(4), "duplicate key 'a'"),
    ('{"a":' + "[" * 100000 + "]" * 100000 + "}", b"", "nests too deeply|not valid JSON"),
    ("[1, 2]", b"", "does not start"),
    ('{"a": nope}', b"", "not valid JSON"),
    ({"__metadata__": {"raygrad.structure": "1"}}, b"", "lacks 'raygrad.sha256'"),
])
def test_hostile_headers_are_refused(tmp_path, header, data, words):
    path = write_file(tmp_path / "hostile", header, data)
    with pytest.raises(SerializationError, match=words):
        tensor.load(path)


def test_a_header_length_beyond_the_file_is_refused(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(struct.pack("<Q", 10 * 1024**3) + b'{"a": 1}')
    with pytest.raises(SerializationError, match="claims 10737418240 bytes"):
        tensor.load(path)


@pytest.mark.parametrize("structure, words", [
    ("[" * 200 + "]" * 200, "nests more than"),
    ('{"$tensor": "missing"}', "does not hold"),
    ('{"$pickle": "os.system"}', "unknown node"),
    ('{"$dict": [[["list", "key"], 1]]}', "malformed dict entry"),
])
def test_a_signed_file_with_a_hostile_structure_is_refused(tmp_path, structure, words):
    path = write_file(tmp_path / "f", {"__metadata__": {"raygrad.structure": structure}}, checksum=True)
    with pytest.raises(SerializationError, match=words):
        tensor.load(path)


# ----------------------------------------------------------------------------------- map_location


def cuda_file(tmp_path):
    structure = json.dumps({"$dict": [["w", {"$tensor": "w", "device": "cuda:0"}]]})
    header = {"__metadata__": {"raygrad.structure": structure}, "w": entry("F32", [2], 0, 8)}
    return write_file(tmp_path / "cuda", header, np.array([1, 2], np.float32).tobytes(), checksum=True)


@pytest.mark.parametrize("map_location", ["cpu", tensor.device("cpu"), {"cuda:0": "cpu"},
                                          lambda t, saved: t, lambda t, saved: "cpu"])
def test_map_location_places_tensors(tmp_path, map_location):
    loaded = tensor.load(cuda_file(tmp_path), map_location=map_location)
    assert loaded["w"].device == tensor.device("cpu")
    np.testing.assert_array_equal(loaded["w"].data, [1, 2])


def test_cuda_tensors_without_cuda_say_to_use_map_location(tmp_path):
    if tensor.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(tensor.DeviceError, match="map_location='cpu'"):
        tensor.load(cuda_file(tmp_path))


def test_bad_map_location(tmp_path, saved):
    with pytest.raises(TypeError, match="map_location"):
        tensor.load(saved, map_location=3)


# ----------------------------------------------------------------------------- with the engine


def test_module_state_dict_round_trip(tmp_path):
    nn = pytest.importorskip("tensor.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("tensor.nn.Linear not available yet")
    model, other = nn.Linear(4, 3), nn.Linear(4, 3)
    tensor.save(model.state_dict(), tmp_path / "model.safetensors")
    other.load_state_dict(tensor.load(tmp_path / "model.safetensors"))
    np.testing.assert_array_equal(other.weight.data, model.weight.data)
    np.testing.assert_array_equal(other.bias.data, model.bias.data)


def test_weights_only_is_accepted(saved):
    assert tensor.load(saved, weights_only=False)["step"] == 3


def test_internal_names_stay_unique(tmp_path):
    a, b = tensor.tensor([1.0]), tensor.tensor([2.0])
    tensor.save({"x.y": a, "x": {"y": b}, "__metadata__": tensor.tensor([3])}, tmp_path / "f")
    loaded = tensor.load(tmp_path / "f")
    assert float(loaded["x.y"]) == 1.0 and float(loaded["x"]["y"]) == 2.0 and int(loaded["__metadata__"]) == 3
    assert MAX_DEPTH >= 16


def test_numpy_rng_state_round_trips_as_torch_checkpoints_store_it(tmp_path):
    # {'numpy_rng': np.random.get_state()} in a checkpoint: a tuple holding a uint32 key
    state = np.random.RandomState(5).get_state()
    tensor.save({"numpy_rng": state, "u16": np.arange(3, dtype=np.uint16), "u64": np.array([2**63], np.uint64)},
                tmp_path / "f")
    loaded = tensor.load(tmp_path / "f", map_location="cpu", weights_only=True)
    assert isinstance(loaded["numpy_rng"], tuple) and loaded["numpy_rng"][0] == "MT19937"
    assert loaded["numpy_rng"][1].dtype == np.uint32 and loaded["numpy_rng"][2:] == state[2:]
    np.testing.assert_array_equal(loaded["numpy_rng"][1], state[1])
    assert loaded["u16"].dtype == np.uint16 and int(loaded["u64"][0]) == 2**63
    restored = np.random.RandomState()
    restored.set_state(loaded["numpy_rng"])
    assert restored.rand() == np.random.RandomState(5).rand()


def test_safe_globals_are_accepted_as_in_torch(saved):
    # torch's weights_only error tells scripts to allow-list globals; raygrad unpickles nothing, so they are only kept
    before = ser.get_safe_globals()
    with ser.safe_globals([np.ndarray, np.dtype]):
        assert ser.get_safe_globals() == before + [np.ndarray, np.dtype]
        assert tensor.load(saved, weights_only=True)["step"] == 3
    assert ser.get_safe_globals() == before
    ser.add_safe_globals([np.ndarray])
    assert ser.get_safe_globals()[-1] is np.ndarray
    ser.clear_safe_globals()
    assert ser.get_safe_globals() == []
