import numpy as np
import pandas as pd
import pytest
import zarr
from zarr.abc.store import RangeByteRequest
from zarr.storage import LocalStore, WrapperStore

from tests.helpers import write_distilled
from tripled.data.distilled import CHUNK, DistilledSet, DistilledWriter


def test_round_trip_and_crop(tmp_path):
    ds = DistilledSet(write_distilled(tmp_path / "d", n=4, size=40))
    assert len(ds) == 4 and ds.attrs == {"toy": True}
    assert list(ds.manifest.columns) == ["key", "id", "task", "stage", "weight", "height", "width"]
    gt, lq = ds.pair(2)
    assert gt.shape == lq.shape == (40, 40, 3) and gt.dtype == np.uint8
    cgt, clq = ds.crop(2, 5, 7, 16)
    assert np.array_equal(cgt, gt[5:21, 7:23]) and np.array_equal(clq, lq[5:21, 7:23])


def test_large_image_is_chunked_for_crops(tmp_path):
    img = np.zeros((600, 700, 3), np.uint8)
    writer = DistilledWriter(tmp_path / "d", {})
    writer.add(dict(id="a", task="t", stage=1, weight=1.0), img, img)
    writer.close()
    arr = DistilledSet(tmp_path / "d")._array(0, "gt")
    assert arr.chunks == (256, 256, 3) and arr.shards == (768, 768, 3)
    assert len(list((tmp_path / "d/images.zarr/000000/gt/c").rglob("*"))) <= 3  # one shard file


@pytest.mark.parametrize("key", ["../../etc", "/etc/passwd", "000000/../../x", "999999", ""])
def test_manifest_key_outside_store_rejected(tmp_path, key):
    folder = write_distilled(tmp_path / "d", n=2)
    manifest = pd.read_parquet(folder / "manifest.parquet")
    manifest.loc[0, "key"] = key
    manifest.to_parquet(folder / "manifest.parquet", index=False)
    with pytest.raises(ValueError, match="not a sample of this store"):
        DistilledSet(folder)


def test_in_memory_reads_equal_store_reads(tmp_path):
    folder = write_distilled(tmp_path / "d", n=3, size=40)
    on_disk, in_memory = DistilledSet(folder), DistilledSet(folder, memory_limit=1 << 20)
    assert on_disk._pairs is None and in_memory._pairs is not None
    for i in range(3):
        assert all(np.array_equal(a, b) for a, b in zip(on_disk.crop(i, 3, 4, 20), in_memory.crop(i, 3, 4, 20)))


class CountingStore(WrapperStore):
    """Records every read of the wrapped store: key, byte range, bytes returned."""

    def __init__(self, store):
        super().__init__(store)
        self.reads = []

    async def get(self, key, prototype, byte_range=None):
        buf = await self._store.get(key, prototype, byte_range)
        self.reads.append((key, byte_range, 0 if buf is None else len(buf)))
        return buf


def test_4k_crops_read_only_the_chunks_they_cover(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (2160, 3840, 3), dtype=np.uint8)  # noise: chunks do not compress
    lq = gt // 2
    writer = DistilledWriter(tmp_path / "d", {})
    writer.add(dict(id="uhd", task="t", stage=1, weight=1.0), gt, lq)
    writer.close()
    ds = DistilledSet(tmp_path / "d", memory_limit=0)
    store = CountingStore(LocalStore(tmp_path / "d/images.zarr", read_only=True))
    ds.group = zarr.open_group(store, mode="r")
    ds._arrays = {(0, name): ds.group[f"{ds.manifest['key'].iat[0]}/{name}"] for name in ("gt", "lq")}
    chunk_bytes = CHUNK * CHUNK * 3
    for y, x, size in [(0, 0, 256), (300, 1000, 256), (1900, 3580, 256), (517, 2049, 96), (1000, 100, 512)]:
        store.reads.clear()
        cgt, clq = ds.crop(0, y, x, size)
        assert np.array_equal(cgt, gt[y:y + size, x:x + size]) and np.array_equal(clq, lq[y:y + size, x:x + size])
        covered = (-(-(y + size) // CHUNK) - y // CHUNK) * (-(-(x + size) // CHUNK) - x // CHUNK)
        chunk_reads = [r for r in store.reads if isinstance(r[1], RangeByteRequest)]  # the rest: shard indexes
        assert len(chunk_reads) == 2 * covered  # gt and lq
        assert sum(r[2] for r in store.reads) < 2 * (covered + 1) * chunk_bytes  # not the 50 MB of both images
