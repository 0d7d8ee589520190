#!/usr/bin/env python3
"""Load every set registered in RUN_DIR/train/dataset_info.json with Hugging Face
`datasets`, as a LLaMA-Factory user's trainer would, and check its columns.

Usage: check_datasets.py RUN_DIR   (deps: tools/check-datasets-requirements.txt)
Offline; the datasets cache lives in a temp dir, so nothing is written to the
repo or the run dir. Exit 1 names the first failing set and file."""
import json
import os
import sys
import tempfile
from pathlib import Path

TMP = tempfile.TemporaryDirectory(prefix="strata-check-datasets-")
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=TMP.name,
                  HF_DATASETS_CACHE=os.path.join(TMP.name, "datasets"))
import datasets  # noqa: E402  (after the environment above)

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()


def fail(name, path, msg):
    sys.exit(f"check_datasets: FAIL {name} ({path}): {msg}")


def nonempty(ds, col, name, path):
    for i, v in enumerate(ds[col]):
        if not isinstance(v, str) or not v.strip():
            fail(name, path, f"row {i}: column {col!r} is {v!r}, want a non-empty string")


def main(run_dir):
    info_path = Path(run_dir) / "train" / "dataset_info.json"
    if not info_path.is_file():
        sys.exit(f"check_datasets: FAIL no registry at {info_path}")
    info = json.loads(info_path.read_text())
    if not isinstance(info, dict) or not info:
        sys.exit(f"check_datasets: FAIL {info_path} registers no sets")
    for name, entry in sorted(info.items()):
        path = info_path.parent / entry.get("file_name", "")
        if not path.is_file():
            fail(name, path, "file_name does not name a file")
        try:
            ds = datasets.load_dataset("parquet", data_files=str(path),
                                       cache_dir=os.path.join(TMP.name, "datasets"))["train"]
        except Exception as e:  # noqa: BLE001 - report any loader error with its set
            cause = f" (cause: {e.__cause__!r})" if e.__cause__ else ""
            fail(name, path, f"load_dataset failed: {type(e).__name__}: {e}{cause}")
        if ds.num_rows == 0:
            fail(name, path, "0 rows")
        columns = entry.get("columns") or {}
        missing = [c for c in columns.values() if c not in ds.column_names]
        if missing:
            fail(name, path, f"columns {missing} named in dataset_info.json not in {ds.column_names}")
        if entry.get("formatting") == "alpaca":
            for col in ("instruction", "output"):
                if col not in ds.column_names:
                    fail(name, path, f"alpaca set lacks column {col!r}")
                nonempty(ds, col, name, path)
        elif columns == {"prompt": "text"}:
            nonempty(ds, "text", name, path)
        else:
            fail(name, path, f"neither alpaca nor pre-training (columns {columns})")
        print(f"{name}: {ds.num_rows} rows, columns {ds.column_names}")
    print(f"check_datasets: {len(info)} sets loaded, 0 failed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_datasets.py RUN_DIR")
    main(sys.argv[1])
