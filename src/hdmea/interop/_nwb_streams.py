"""The streamed arrays of :func:`hdmea.interop.nwb.export`: columns read from the recording a piece at a time.

* :class:`_RunningDigests`: the checksum manifest's digest of each 1-D dataset, fed as the
  dataset is read front to back and checked when it is read to its end.
* :func:`_iterator_class`: the hdmf ``GenericDataChunkIterator`` classes that stack per-unit
  arrays, concatenate spike trains as seconds and slice one dataset, so memory stays bounded.

hdmf is imported only when :func:`_iterator_class` is called.
"""

from __future__ import annotations

import numpy as np

from h5stream import checksums
from h5stream.errors import ChecksumError
from hdmea.io.recording import read_selection, read_whole

_SPIKES_PER_BUFFER = 1 << 20
_SPIKES_PER_CHUNK = 1 << 17


class _RunningDigests:
    """Digests of 1-D datasets read front to back in pieces, checked when each is read to its end.

    The checksum manifest holds one digest per whole dataset; a dataset read in order
    gets its digest fed piece by piece.  A piece out of order (a second pass) stops the
    check of that dataset, as for any partial read.
    """

    def __init__(self, datasets) -> None:
        self._datasets = list(datasets)
        manifest = checksums.manifest_for(self._datasets[0]) if self._datasets else None
        self._manifest = manifest
        self._state: dict[int, tuple[int, int]] = {}  # index -> (next offset, running crc)

    def update(self, index: int, offset: int, block: np.ndarray) -> None:
        if self._manifest is None:
            return
        ds = self._datasets[index]
        expected = self._manifest.datasets.get(ds.name)
        if expected is None:
            return
        position, crc = self._state.get(index, (0, None))
        if crc is None:
            if offset != 0:
                return
            crc = checksums.digest_start(ds.dtype, ds.shape)
        elif offset != position:
            self._state[index] = (-1, None)
            return
        crc = checksums.digest_update(crc, np.asarray(block, dtype=ds.dtype))
        position = offset + int(np.shape(block)[0])
        self._state[index] = (position, crc)
        if position == int(ds.shape[0]):
            found = checksums.digest_end(crc)
            if found != expected:
                raise ChecksumError("checksum mismatch: the stored value differs from what was written",
                                    path=self._manifest.path, obj=ds.name,
                                    expected=f"{checksums.ALGORITHM} {expected}",
                                    found=f"{checksums.ALGORITHM} {found}", hint="the file is damaged; restore it from a copy, "
                                    "or export with verify=False to get the data as stored")


def _iterator_class():
    from hdmf.data_utils import GenericDataChunkIterator

    class StackedUnitArrays(GenericDataChunkIterator):
        """Per-unit arrays of one shape stacked along a first axis, read a few units at a time.

        ``sources[i]`` is an h5py dataset (or None: filled with ``fill``).
        """

        def __init__(self, sources, shape, dtype, fill, per_buffer):
            self._sources = list(sources)
            self._shape = tuple(int(s) for s in shape)
            self._dtype = np.dtype(dtype)
            self._fill = fill
            n = max(1, min(len(self._sources), per_buffer))
            # Small per-unit arrays (waveforms, curves) share chunks of up to ~1 MiB; an image is a chunk.
            per_chunk = max(1, min(n, (1 << 20) // max(1, self._dtype.itemsize * int(np.prod(self._shape)))))
            super().__init__(buffer_shape=(n, *self._shape), chunk_shape=(per_chunk, *self._shape),
                             display_progress=False)

        def _get_data(self, selection):
            rows = range(*selection[0].indices(len(self._sources)))
            out = np.full((len(rows), *self._shape), self._fill, dtype=self._dtype)
            for k, i in enumerate(rows):
                source = self._sources[i]
                if source is not None:
                    out[k] = read_whole(source)
            return out[(slice(None), *selection[1:])]

        def _get_maxshape(self):
            return (len(self._sources), *self._shape)

        def _get_dtype(self):
            return self._dtype

    class FlatSpikeSeconds(GenericDataChunkIterator):
        """Every unit's spike samples one after the other, as float64 seconds."""

        def __init__(self, sources, offsets, sampling_rate):
            self._sources = list(sources)
            self._offsets = np.asarray(offsets, dtype=np.int64)
            self._rate = float(sampling_rate)
            # Each train is read in order, a buffer at a time: its digest runs along (None: not checked).
            self._digests = _RunningDigests(self._sources)
            total = int(self._offsets[-1])
            super().__init__(buffer_shape=(min(total, _SPIKES_PER_BUFFER),),
                             chunk_shape=(min(total, _SPIKES_PER_CHUNK),), display_progress=False)

        def _get_data(self, selection):
            lo, hi, _ = selection[0].indices(int(self._offsets[-1]))
            out = np.empty(hi - lo, dtype=np.float64)
            first = int(np.searchsorted(self._offsets, lo, side="right")) - 1
            for i in range(first, len(self._sources)):
                a, b = int(self._offsets[i]), int(self._offsets[i + 1])
                if a >= hi:
                    break
                s0, s1 = max(a, lo), min(b, hi)
                if s1 > s0:
                    samples = read_selection(self._sources[i], slice(s0 - a, s1 - a))
                    self._digests.update(i, s0 - a, samples)
                    np.divide(samples, self._rate, out=out[s0 - lo:s1 - lo], casting="unsafe")
            return out

        def _get_maxshape(self):
            return (int(self._offsets[-1]),)

        def _get_dtype(self):
            return np.dtype(np.float64)

    class DatasetSlices(GenericDataChunkIterator):
        """One 1-D dataset read a buffer at a time."""

        def __init__(self, dataset, per_buffer):
            self._dataset = dataset
            self._digests = _RunningDigests([dataset])
            n = max(1, min(int(dataset.shape[0]), per_buffer))
            super().__init__(buffer_shape=(n,), chunk_shape=(min(n, _SPIKES_PER_CHUNK),), display_progress=False)

        def _get_data(self, selection):
            data = read_selection(self._dataset, selection)
            self._digests.update(0, selection[0].indices(int(self._dataset.shape[0]))[0], data)
            return data

        def _get_maxshape(self):
            return tuple(self._dataset.shape)

        def _get_dtype(self):
            return self._dataset.dtype

    return StackedUnitArrays, FlatSpikeSeconds, DatasetSlices


def gzip_column(array: np.ndarray, chunk: int, level: int, h5dataio):
    """The ``data`` of a column that :func:`h5stream.writer.columns.fill_column` fills after the write.

    hdmf creates the dataset (shape, ``chunk``, shuffle, gzip ``level``) and writes nothing into it.
    """
    from hdmf.data_utils import AbstractDataChunkIterator

    # The placeholder keeps the column's shape and type, not the column: pynwb's containers (reference
    # cycles, freed by the garbage collector) would otherwise keep the whole array alive after the export.
    shape, dtype = array.shape, array.dtype

    class Placeholder(AbstractDataChunkIterator):
        """Creates the dataset through hdmf and yields no data."""

        def __iter__(self):
            return self

        def __next__(self):
            raise StopIteration

        def recommended_chunk_shape(self):
            return (chunk,)

        def recommended_data_shape(self):
            return shape

        @property
        def dtype(self):
            return dtype

        @property
        def maxshape(self):
            return shape

    return h5dataio(Placeholder(), compression="gzip", compression_opts=level, shuffle=True, chunks=(chunk,))
