"""Text data found at run time: the Python standard library's own source files, made into Parquet.

    python examples/language/stdlib_text.py [--out examples/language/data] [--force]

Nothing is downloaded: the text is the `.py` files of the running Python's standard library
(sysconfig.get_paths()["stdlib"]). The selection is deterministic for a given Python version:

- language model: every top-level module (`<stdlib>/*.py`), sorted by name; every 10th file
  (positions 10, 20, ...) is held out for evaluation. The files' characters, joined by blank lines,
  are cut into windows of CONTEXT + 1 characters that overlap by one, so that each window gives
  CONTEXT (input, next character) pairs.
- snippet classifier: the non-test files of the PACKAGES below; every 5th file of each package,
  by sorted path, is held out. Each file is cut into SNIPPET-character windows; the label is the
  package. Each split has the same number of snippets of every package (the larger packages'
  snippets are subsampled with a fixed seed), so chance is 1 / len(PACKAGES).

Splitting by file, not by window, keeps a held-out file's text, imports and names away from training.

Characters are ASCII codes 0..126; anything else (rare in the stdlib: accented names, symbols in
docstrings) becomes OTHER = 127. The files written, into `--out` (default: data/ beside this
script, ignored by git), are rebuilt when the Python version or this script's settings change:

    lm_train.parquet, lm_eval.parquet              tokens: fixed_size_list<uint8>[CONTEXT + 1]
    snippets_train.parquet, snippets_eval.parquet  tokens: fixed_size_list<uint8>[SNIPPET], label: int64
    manifest.json                                  Python version, stdlib folder, files, counts
"""
from __future__ import annotations

import argparse
import json
import platform
import sysconfig
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

VOCAB = 128
OTHER = 127
CONTEXT = 64                    # characters a language-model window predicts from
SNIPPET = 128                   # characters per classifier snippet
LM_EVAL_EVERY, SNIPPET_EVAL_EVERY = 10, 5
PACKAGES = ("asyncio", "email", "importlib", "multiprocessing", "unittest", "xml")
SEED = 0
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
FILES = ("lm_train.parquet", "lm_eval.parquet", "snippets_train.parquet", "snippets_eval.parquet")


# ---------------------------------------------------------------------------------- characters
def encode(text: str) -> np.ndarray:
    """Text -> uint8 codes: ASCII as is, every other character as OTHER."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    return np.where(codes < OTHER, codes, OTHER).astype(np.uint8)


def decode(codes) -> str:
    """uint8 codes -> text (OTHER shows as U+FFFD, the replacement character)."""
    return "".join("\ufffd" if c == OTHER else chr(c) for c in np.asarray(codes).tolist())


# ------------------------------------------------------------------------------------ the files
def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_files(root: Path) -> list[Path]:
    """The standard library's top-level modules, sorted by name."""
    return sorted(root.glob("*.py"))


def package_files(root: Path, package: str) -> list[Path]:
    """A package's .py files, sorted, without its tests (paths with a part named test*)."""
    folder = root / package
    if not folder.is_dir():
        raise FileNotFoundError(f"the standard library at {root} has no package {package!r}; this Python "
                                "install is incomplete, or change PACKAGES in stdlib_text.py")
    return sorted(p for p in folder.rglob("*.py") if not any(part.startswith("test") for part in
                                                             p.relative_to(folder).parts))


def split_files(files: list[Path], every: int) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files): every `every`-th file is held out."""
    held = [f for i, f in enumerate(files) if i % every == every - 1]
    return [f for i, f in enumerate(files) if i % every != every - 1], held


def read_codes(files: list[Path]) -> np.ndarray:
    """The files' text, joined by blank lines, as codes (undecodable bytes replaced)."""
    return encode("\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files))


def windows(codes: np.ndarray, length: int, stride: int) -> np.ndarray:
    """(N, length) consecutive windows of `codes`, starting every `stride` characters."""
    count = (len(codes) - length) // stride + 1
    if count < 1:
        return np.empty((0, length), np.uint8)
    starts = np.arange(count) * stride
    return codes[starts[:, None] + np.arange(length)]


# ---------------------------------------------------------------------------------- the tables
def token_table(tokens: np.ndarray, labels: np.ndarray | None = None) -> pa.Table:
    width = tokens.shape[1]
    columns = {"tokens": pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1), pa.uint8()), width)}
    if labels is not None:
        columns["label"] = pa.array(labels, pa.int64())
    return pa.table(columns)


def language_model_tables(root: Path) -> tuple[pa.Table, pa.Table, dict]:
    train_files, eval_files = split_files(module_files(root), LM_EVAL_EVERY)
    tables = [token_table(windows(read_codes(files), CONTEXT + 1, CONTEXT)) for files in (train_files, eval_files)]
    info = {"train_files": [f.name for f in train_files], "eval_files": [f.name for f in eval_files],
            "train_windows": tables[0].num_rows, "eval_windows": tables[1].num_rows}
    return tables[0], tables[1], info


def snippet_tables(root: Path) -> tuple[pa.Table, pa.Table, dict]:
    rng = np.random.default_rng(SEED)
    per_split = {"train": [], "eval": []}  # per package: (N, SNIPPET) windows
    info = {}
    for package in PACKAGES:
        train_files, eval_files = split_files(package_files(root, package), SNIPPET_EVAL_EVERY)
        for split, files in (("train", train_files), ("eval", eval_files)):
            per_split[split].append(np.concatenate([windows(read_codes([f]), SNIPPET, SNIPPET) for f in files]))
        info[package] = {"train_files": len(train_files), "eval_files": len(eval_files)}
    tables = []
    for split in ("train", "eval"):
        count = min(len(w) for w in per_split[split])  # balanced classes: chance is 1 / len(PACKAGES)
        picked = [w[np.sort(rng.permutation(len(w))[:count])] for w in per_split[split]]
        tokens = np.concatenate(picked)
        labels = np.repeat(np.arange(len(PACKAGES)), count)
        order = rng.permutation(len(labels))  # mixed classes in every row group
        tables.append(token_table(tokens[order], labels[order]))
        info[f"{split}_per_class"] = count
    return tables[0], tables[1], info


# ------------------------------------------------------------------------------------- prepare
def settings() -> dict:
    """What the files depend on: rebuild when any of it changes."""
    return {"python": platform.python_version(), "stdlib": str(stdlib_root()), "context": CONTEXT,
            "snippet": SNIPPET, "packages": list(PACKAGES), "lm_eval_every": LM_EVAL_EVERY,
            "snippet_eval_every": SNIPPET_EVAL_EVERY, "seed": SEED}


def prepare(out: Path = DEFAULT_OUT, force: bool = False, log=print) -> Path:
    """Write the Parquet files into `out` unless up to date there; returns `out`."""
    out = Path(out)
    manifest_path = out / "manifest.json"
    if not force and manifest_path.exists() and all((out / name).exists() for name in FILES):
        if json.loads(manifest_path.read_text()).get("settings") == settings():
            return out
    out.mkdir(parents=True, exist_ok=True)
    root = stdlib_root()
    lm_train, lm_eval, lm_info = language_model_tables(root)
    snippets_train, snippets_eval, snippet_info = snippet_tables(root)
    for name, table in zip(FILES, (lm_train, lm_eval, snippets_train, snippets_eval)):
        pq.write_table(table, out / name, row_group_size=4096)  # several row groups: a finer shuffle
    manifest = {"settings": settings(), "language_model": lm_info, "snippets": snippet_info}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")  # last: its presence means "complete"
    log(f"stdlib text from {root} (Python {platform.python_version()}) -> {out}: language model "
        f"{lm_info['train_windows']} training / {lm_info['eval_windows']} evaluation windows of {CONTEXT + 1} "
        f"characters; snippets {snippet_info['train_per_class']} / {snippet_info['eval_per_class']} per package "
        f"x {len(PACKAGES)} packages")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the Parquet files")
    parser.add_argument("--force", action="store_true", help="rebuild even if the files are up to date")
    args = parser.parse_args()
    prepare(args.out, args.force)
