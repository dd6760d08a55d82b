"""Opening zarr v3 stores safely: a store pulled from a remote is data only."""
from __future__ import annotations

import json
import os
from pathlib import Path

import zarr

from tripled.data.layouts import inside
from tripled.errors import StoreError

# Codecs that (de)compress, check or reorder bytes, and plain numeric types. Anything else (a pickle
# codec, object arrays, zarr v2 metadata) is refused before a byte of it is decoded.
STORE_CODECS = {"bytes", "zstd", "gzip", "blosc", "crc32c", "transpose", "sharding_indexed"}
STORE_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64"}


def _check_codecs(codecs: list, where: Path) -> None:
    for codec in codecs:
        name = codec.get("name") if isinstance(codec, dict) else codec
        if not isinstance(name, str) or name not in STORE_CODECS:
            raise StoreError(f"{where}: codec {name!r} is not allowed (only {sorted(STORE_CODECS)})")
        config = (codec.get("configuration") or {}) if isinstance(codec, dict) else {}
        _check_codecs(list(config.get("codecs", [])) + list(config.get("index_codecs", [])), where)


def open_store(path: Path | str) -> zarr.Group:
    """A zarr v3 group, read-only, after checking that every file stays inside it and every array
    holds plain numbers behind allowed codecs."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a zarr v3 store (no zarr.json)")
    for top, dirs, names in os.walk(path):
        for name in dirs + names:
            entry = Path(top) / name
            if entry.is_symlink() and not inside(entry, path):
                raise StoreError(f"{entry}: a link that leads outside the store")
            if name in (".zarray", ".zgroup", ".zattrs", ".zmetadata"):
                raise StoreError(f"{entry}: zarr v2 metadata; only zarr v3 stores are read")
        if "zarr.json" not in names:
            continue
        meta_path = Path(top) / "zarr.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            raise StoreError(f"{meta_path}: not zarr v3 metadata")
        if meta.get("node_type") == "array":
            dtype = meta.get("data_type")
            if not isinstance(dtype, str) or dtype not in STORE_DTYPES:
                raise StoreError(f"{meta_path}: data type {dtype!r} is not a plain number type")
            _check_codecs(meta.get("codecs") or [], meta_path)
        elif meta.get("node_type") != "group":
            raise StoreError(f"{meta_path}: unknown node type {meta.get('node_type')!r}")
    return zarr.open_group(path, mode="r", zarr_format=3)
