"""The ``.cmtr`` reader's one-pass Peaks kernel and its direct reads, against a naive numpy twin.

The kernel (``h5stream._ext._peaks.summarise_peaks``, Cython, compiled at install) checks every peak and computes the
included peaks' sample indices, amplitudes and cutout sums in one pass over strided,
unaligned views of a table's bytes; the reader feeds it tables read straight from the
file's plain runs of bytes (``O_DIRECT`` where allowed) by a read-ahead thread.  The twin
here computes the same with whole-array numpy on tables read by plain h5py, and the files
are written by hand with plain h5py (chunks of two tables interleaved, so a table lies in
several runs; a compressed table, one of float64 cutouts, a contiguous one, an empty one).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError
from h5stream.kernels.peaks import summarise_peaks
from hdmea.io.cmtr import CmtrFile
from h5stream.tables import plain_runs
from h5stream.walk import ANY, Layout, walk_group

FS = 20_000.0
N_CUT = 40


def peaks_dtype(ts="<i8", amp="<f4", flag="u1", n_cut=N_CUT, byteorder="<", cut="f4"):
    fields = [("Timestamp", ts)]
    if amp is not None:
        fields.append(("PeakAmplitude", amp))
    fields.append(("IncludePeak", flag))
    fields += [(f"Sample {i}", byteorder + cut) for i in range(n_cut)]
    return np.dtype(fields)  # packed: 173 bytes a row with the vendor's columns, no column aligned


def random_peaks(n, dtype, seed=0, include_share=0.8):
    rng = np.random.default_rng(seed)
    peaks = np.zeros(n, dtype=dtype)
    peaks["Timestamp"] = np.sort(rng.integers(0, 60_000_000, n)).astype(dtype["Timestamp"])
    if "PeakAmplitude" in dtype.names:
        peaks["PeakAmplitude"] = rng.normal(-80, 20, n)
    peaks["IncludePeak"] = rng.random(n) < include_share
    for name in dtype.names[3 if "PeakAmplitude" in dtype.names else 2:]:
        peaks[name] = rng.normal(0, 30, n)
    return peaks


def naive(peaks, fs=FS, waveform=True):
    """The twin: whole-array numpy on the structured table."""
    include = peaks["IncludePeak"] == 1
    with np.errstate(invalid="ignore"):  # a damaged table's samples are never used: it is refused
        samples = np.rint(peaks["Timestamp"][include].astype(np.float64) * (fs / 1e6)).astype(np.uint64)
    amps = (peaks["PeakAmplitude"][include].astype(np.float32) if "PeakAmplitude" in peaks.dtype.names
            else np.zeros(0, np.float32))
    names = [n for n in peaks.dtype.names if n.startswith("Sample")]
    if not waveform:
        wave = np.zeros(0, np.float32)
    elif not include.any() or not names:
        wave = np.zeros(len(names), np.float32)
    else:
        cut = np.stack([peaks[n].astype(np.float64) for n in names], axis=1)[include]
        wave = cut.mean(axis=0).astype(np.float32)
    flags = peaks["IncludePeak"]
    times = peaks["Timestamp"].astype(np.float64)
    first = lambda mask: int(np.flatnonzero(mask)[0]) if mask.any() else -1  # noqa: E731
    checks = (first((flags != 0) & (flags != 1)), first(~np.isfinite(times) | (times < 0)),
              first(peaks["Timestamp"][1:] < peaks["Timestamp"][:-1]) + 1 if peaks.size > 1 and
              (peaks["Timestamp"][1:] < peaks["Timestamp"][:-1]).any() else -1)
    return samples, amps, wave, checks


def kernel(peaks, fs=FS):
    names = [n for n in peaks.dtype.names if n.startswith("Sample")]
    if names:
        first = peaks[names[0]]
        cut = np.lib.stride_tricks.as_strided(first, shape=(peaks.size, len(names)), strides=(peaks.strides[0], 4))
    else:
        cut = np.zeros((peaks.size, 0), np.float32)
    has_amp = "PeakAmplitude" in peaks.dtype.names
    samples = np.empty(peaks.size, np.uint64)
    amps = np.empty(peaks.size if has_amp else 0, np.float32)
    sums = np.zeros(len(names), np.float64)
    k, *checks, n_flagged = summarise_peaks(peaks["Timestamp"], peaks["IncludePeak"],
                                            peaks["PeakAmplitude"] if has_amp else np.zeros(0, np.float32), cut,
                                            fs / 1e6, samples, amps, sums)
    assert n_flagged == 0  # no template: no row is flagged
    wave = (sums / k).astype(np.float32) if k and names else np.zeros(len(names), np.float32)
    return samples[:k], amps[:k] if has_amp else amps, wave, tuple(checks)


@pytest.mark.parametrize("ts, amp, flag, n_cut", [
    ("<i8", "<f4", "u1", N_CUT),  # the vendor's columns
    ("<u8", "<f8", "i1", 7),
    ("<f8", None, "<f4", 0),
    ("<i4", "<i2", "<i4", 1),
])
def test_kernel_equals_the_naive_twin(ts, amp, flag, n_cut):
    dtype = peaks_dtype(ts, amp, flag, n_cut)
    for seed, n in ((0, 1), (1, 1000), (2, 20_011)):
        peaks = random_peaks(n, dtype, seed)
        if n > 1 and dtype.itemsize % 8:  # the kernel reads the columns where they lie, unaligned
            assert not peaks["Timestamp"].flags.aligned
        got, want = kernel(peaks), naive(peaks)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[0].dtype == np.uint64
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-5)
        assert got[3] == want[3] == (-1, -1, -1)


def test_kernel_finds_the_rows_the_twin_finds():
    dtype = peaks_dtype("<f8", "<f4", "u1", 3)
    for bad_flag, bad_time, unsorted, nan in ((10, 20, 30, False), (-1, 7, -1, True), (-1, -1, 500, False),
                                              (999, -1, -1, False)):
        peaks = random_peaks(1000, dtype, seed=bad_time + 2)
        if bad_flag >= 0:
            peaks["IncludePeak"][bad_flag] = 2
        if bad_time >= 0:
            peaks["Timestamp"][bad_time] = np.nan if nan else -1.0
        if unsorted >= 0:
            peaks["Timestamp"][unsorted] = peaks["Timestamp"][unsorted - 1] - 1
        want = naive(peaks)[3]
        assert kernel(peaks)[3] == want
        assert want[0] == bad_flag and (want[1] == bad_time or bad_time < 0)
    # no included peak: nothing summed
    peaks = random_peaks(50, peaks_dtype(), include_share=0.0)
    got = kernel(peaks)
    assert got[0].size == 0 and not got[2].any()


def _cutout_view(peaks, n_cut):
    first = peaks["Sample 0"] if n_cut else None
    return np.lib.stride_tricks.as_strided(first, shape=(peaks.size, n_cut), strides=(peaks.strides[0], 4))


@pytest.mark.parametrize("room", [0, 3, 256])
def test_kernel_flags_the_rows_off_the_template_the_twin_flags(room):
    from tests import reference

    n_cut = 7
    peaks = random_peaks(2000, peaks_dtype("<i8", "<f4", "u1", n_cut), seed=5)
    template = np.linspace(-40, 10, n_cut).astype(np.float32)
    for i in range(n_cut):
        peaks[f"Sample {i}"] = template[i] + np.float32(3) * np.sin(np.arange(2000) + i).astype(np.float32)
    planted = {11: 900.0, 250: -1e30, 1999: np.nan, 640: 80.0}  # 640: excluded below, never flagged
    for row, value in planted.items():
        peaks["Sample 3"][row] = value
    peaks["IncludePeak"][[11, 250, 1999]] = 1
    peaks["IncludePeak"][640] = 0
    cut = _cutout_view(peaks, n_cut)
    samples, amps, sums = np.empty(2000, np.uint64), np.empty(2000, np.float32), np.zeros(n_cut)
    flagged = np.full(room, -7, np.int64)
    k, *checks, n_flagged = summarise_peaks(peaks["Timestamp"], peaks["IncludePeak"], peaks["PeakAmplitude"], cut,
                                            FS / 1e6, samples, amps, sums, template, 50.0, flagged)
    twin = reference.summarise_peaks_naive(peaks["Timestamp"], peaks["IncludePeak"], peaks["PeakAmplitude"], cut,
                                           FS / 1e6, template, 50.0)
    assert twin[7] == [11, 250, 1999] and n_flagged == 3  # every flagged row counted, room or not
    np.testing.assert_array_equal(flagged[:min(room, 3)], twin[7][:room])
    assert (flagged[3:] == -7).all()  # nothing written past the rows found
    assert k == twin[3] and tuple(checks) == twin[4:7]


def _unit_group(sorter, uid, row, col):
    g = sorter.create_group(f"Unit {uid}")
    g.attrs["UnitID"] = np.int32(uid)
    g.attrs["SensorID"] = np.int32(65 * (col - 1) + row)
    g.attrs["Row"] = np.int32(row)
    g.attrs["Column"] = np.int32(col)
    return g


@pytest.fixture
def handmade(tmp_path):
    """A .cmtr written by plain h5py: six units' Peaks tables in the layouts a file may hold."""
    path = tmp_path / "handmade.cmtr"
    dtype = peaks_dtype()
    tables = {
        1: random_peaks(5000, dtype, 1),  # chunked, its chunks interleaved with unit 2's: several runs
        2: random_peaks(3100, dtype, 2),
        3: random_peaks(2000, dtype, 3),  # gzip: read through h5py
        4: random_peaks(1500, peaks_dtype(amp="<f8", cut="f8"), 4),  # float64 cutouts: numpy
        5: random_peaks(700, dtype, 5),  # contiguous
        6: random_peaks(0, dtype, 6),  # empty
        7: random_peaks(300, dtype, 7, include_share=0.0),  # nothing included
    }
    with h5py.File(path, "w") as f:
        f.attrs["ProgramName"] = "CMOS-MEA-Tools"
        f.attrs["LB.RecordingDuration"] = np.float64(60_000_000)
        sorter = f.create_group("Spike Sorter")
        groups = {uid: _unit_group(sorter, uid, 2 + uid, 3 + uid) for uid in tables}
        one = groups[1].create_dataset("Peaks", shape=(5000,), dtype=dtype, chunks=(512,))
        two = groups[2].create_dataset("Peaks", shape=(3100,), dtype=dtype, chunks=(512,))
        for a in range(0, 5000, 1024):  # two chunks of one, one chunk of the other, a Source between
            one[a : a + 1024] = tables[1][a : a + 1024]
            f.flush()  # the chunks are placed in the file when they leave the chunk cache
            if a < 3100:
                two[a // 2 : a // 2 + 512] = tables[2][a // 2 : a // 2 + 512]
                f.flush()
            groups[1].create_dataset(f"Source {a}", data=np.arange(300, dtype=np.float32))
        two[2048:] = tables[2][2048:]
        groups[3].create_dataset("Peaks", data=tables[3], chunks=(256,), compression="gzip")
        groups[4].create_dataset("Peaks", data=tables[4], chunks=(256,))
        groups[5].create_dataset("Peaks", data=tables[5])
        groups[6].create_dataset("Peaks", data=tables[6])
        groups[7].create_dataset("Peaks", data=tables[7], chunks=(100,))
        units = np.zeros(len(tables), dtype=[("UnitID", "<i4"), ("SensorID", "<i4"), ("Row", "<i4"),
                                             ("Column", "<i4"), ("SNR", "<f8")])
        for i, uid in enumerate(tables):
            units[i] = (uid, 65 * (2 + uid) + 2 + uid, 2 + uid, 3 + uid, 1.5 * uid)
        sorter.create_dataset("Units", data=units)
    return path, tables


def _check_mcs(monkeypatch):
    # the hand-made file carries no vendor type stamps: the root check is the MCS reader tests' concern
    import hdmea.io.cmtr as cmtr

    monkeypatch.setattr(cmtr, "check_mcs_root", lambda f, path, program=None: None)


@pytest.fixture(params=["read-ahead", "read-ahead from the page cache", "in the calling thread"])
def read_ahead(request, monkeypatch):
    """Every schedule of the reader: the read-ahead thread with O_DIRECT where allowed, or copying from the page
    cache (either forced on these small tables, whatever share of them the cache holds), and the calling
    thread through the page cache (what tables this small get)."""
    import hdmea.io.cmtr as cmtr

    if request.param == "read-ahead":
        monkeypatch.setattr(cmtr, "READ_AHEAD_BYTES", 0)
        monkeypatch.setattr(cmtr, "CACHED_SHARE", 2.0)  # no share held reaches it: direct reads
    elif request.param == "read-ahead from the page cache":
        monkeypatch.setattr(cmtr, "READ_AHEAD_BYTES", 0)
        monkeypatch.setattr(cmtr, "CACHED_SHARE", 0.0)  # any share held reaches it: reads through the cache
    else:
        assert cmtr.READ_AHEAD_BYTES > 10 * 1024**2  # the handmade file's tables are below it
    return request.param


def test_reader_equals_the_twin_on_every_layout(handmade, monkeypatch, read_ahead):
    path, tables = handmade
    _check_mcs(monkeypatch)
    with h5py.File(path, "r") as f:
        sorter = walk_group(f, "Spike Sorter", Layout([(ANY, "Peaks")]))
        runs = {uid: plain_runs(sorter.children[f"Unit {uid}"].children["Peaks"]) for uid in tables}
        read_back = {uid: f[f"Spike Sorter/Unit {uid}/Peaks"][()] for uid in tables}
    assert len(runs[1]) > 1 and len(runs[2]) > 1  # interleaved chunks: several runs
    assert runs[3] is None and runs[6] is None and len(runs[5]) == 1 and len(runs[7]) == 1
    for waveform in (True, False):
        with CmtrFile(path) as f:
            units = f.read_units(FS, waveform=waveform)
        assert [u.unit_id for u in units] == sorted(tables)
        for u in units:
            samples, amps, wave, _ = naive(read_back[u.unit_id], waveform=waveform)
            np.testing.assert_array_equal(u.spike_times, samples)
            np.testing.assert_array_equal(u.peak_amplitudes, amps)
            np.testing.assert_allclose(u.waveform, wave, rtol=1e-6, atol=1e-5)
            assert u.waveform.dtype == np.float32 and u.spike_times.dtype == np.uint64
            assert u.n_peaks == tables[u.unit_id].size and u.quality == {"SNR": 1.5 * u.unit_id}
    with CmtrFile(path) as f:  # one unit alone reads as it does among the others
        np.testing.assert_array_equal(f.read_unit(2, FS).spike_times, naive(read_back[2])[0])


def test_a_damaged_table_in_plain_runs_is_refused_naming_its_row(handmade, monkeypatch, read_ahead):
    path, tables = handmade
    _check_mcs(monkeypatch)
    with h5py.File(path, "r+") as f:
        ds = f["Spike Sorter/Unit 1/Peaks"]
        row = ds[4321]
        row["IncludePeak"] = 7
        ds[4321] = row
    with CmtrFile(path) as f, pytest.raises(RecordingFormatError) as err:
        f.read_units(FS)
    text = str(err.value)
    assert "Unit 1/Peaks row 4321" in text and "IncludePeak" in text and str(path) in text


@pytest.mark.parametrize("held, direct", [(1.0, False), (0.5, False), (0.49, True), (0.0, True), (None, True)])
def test_large_tables_are_read_directly_unless_the_page_cache_holds_them(handmade, monkeypatch, held, direct):
    """The read-ahead schedule opens its reader with O_DIRECT only while the page cache holds less than half of
    the tables' bytes (or cannot say); the values are the twin's either way."""
    import hdmea.io.cmtr as cmtr

    path, tables = handmade
    _check_mcs(monkeypatch)
    monkeypatch.setattr(cmtr, "READ_AHEAD_BYTES", 0)
    asked = []
    monkeypatch.setattr(cmtr, "_held_share", lambda p, t: asked.append(len(t)) or held)
    opened = []
    real = cmtr.TableReader
    monkeypatch.setattr(cmtr, "TableReader", lambda *a, **k: opened.append(k["direct"]) or real(*a, **k))
    with h5py.File(path, "r") as f:
        read_back = {uid: f[f"Spike Sorter/Unit {uid}/Peaks"][()] for uid in tables}
    with CmtrFile(path) as f:
        units = f.read_units(FS)
    assert asked == [len(tables)] and opened == [direct]
    for u in units:
        np.testing.assert_array_equal(u.spike_times, naive(read_back[u.unit_id])[0])


def test_the_held_share_is_the_page_caches_answer_over_the_tables_runs(handmade, monkeypatch):
    """_held_share weighs each plain run by its bytes, against mincore over the same ranges; tables without
    plain runs (compressed, contiguous-but-empty) are left out."""
    import hdmea.io.cmtr as cmtr
    from h5stream.pagecache import resident_fraction

    path, tables = handmade
    _check_mcs(monkeypatch)
    with CmtrFile(path) as f:  # (the runs are asked of the open file)
        opened = [f._open_table(uid) for uid in sorted(tables)]
        for t in opened:
            t.runs = plain_runs(t.entry)
    if resident_fraction(path) is None:
        pytest.skip("the system cannot say which pages the page cache holds")
    spans = []
    for t in opened:
        if t.runs is not None:
            ends = [r for r, _ in t.runs[1:]] + [t.n_rows]
            spans += [(o, (e - r) * t.layout.dtype.itemsize) for (r, o), e in zip(t.runs, ends)]
    assert len(spans) > 3
    expected = sum(resident_fraction(path, o, n) * n for o, n in spans) / sum(n for _, n in spans)
    assert cmtr._held_share(path, opened) == pytest.approx(expected)
    assert expected > 0.5  # written just now: the page cache holds it
    assert cmtr._held_share(path, [t for t in opened if t.runs is None]) is None


@pytest.mark.parametrize("column", ["PeakAmplitude", "Timestamp", "Sample 3"])
def test_a_table_type_whose_byte_order_is_flipped_is_refused(tmp_path, monkeypatch, column):
    """The vendor's little-endian bytes under a type that says big-endian (one flipped bit of the stored type):
    a peak of -68 uV would read as 2.8e-25; the reader refuses the column, naming it."""
    _check_mcs(monkeypatch)
    sound = random_peaks(200, peaks_dtype(), 1)
    sound["PeakAmplitude"] = -68.0
    flipped = np.dtype([(n, sound.dtype.fields[n][0].newbyteorder(">") if n == column else sound.dtype.fields[n][0])
                        for n in sound.dtype.names])
    assert flipped.itemsize == sound.dtype.itemsize
    path = tmp_path / "flipped.cmtr"
    with h5py.File(path, "w") as f:
        f.attrs["ProgramName"] = "CMOS-MEA-Tools"
        f.attrs["LB.RecordingDuration"] = np.float64(60_000_000)
        sorter = f.create_group("Spike Sorter")
        _unit_group(sorter, 1, 5, 6).create_dataset("Peaks", data=sound.view(flipped))  # the same bytes
    with h5py.File(path, "r") as f:  # as stored, the column decodes to other numbers
        stored = f["Spike Sorter/Unit 1/Peaks"][()]
        assert not np.array_equal(stored[column], sound[column])
    with CmtrFile(path) as f, pytest.raises(RecordingFormatError) as err:
        f.read_units(FS)
    text = str(err.value)
    assert str(path) in text and f"Unit 1/Peaks column '{column}'" in text and "big-endian" in text
    assert f"little-endian {sound.dtype.fields[column][0].newbyteorder('<')}" in text and ">" in text


def test_a_damaged_table_type_after_sound_ones_of_its_layout_is_still_refused(tmp_path):
    """The file scan checks each distinct table type once: a type equal to one found sound is passed, but a
    damaged copy (one float member's exponent bias 127 made 224, the damage that corrupts the heap on a read)
    differs from it and is checked, and refused, even after many sound tables of the same layout."""
    from h5stream.errors import FormatError
    from h5stream.files.validated import open_validated

    path = tmp_path / "tables.h5"
    dtype = peaks_dtype(n_cut=8)
    with h5py.File(path, "w") as f:
        for name in ("a", "b", "c", "d"):
            f.create_dataset(name, data=random_peaks(50, dtype))
        body = f["d"].id.get_type().encode()[2:]
        member = f["d"].id.get_type().get_member_type(4).encode()[2:]
    open_validated(path).close()  # sound: four tables of one type
    data = bytearray(path.read_bytes())
    assert data.count(body) == 4
    at = data.rfind(body) + body.find(member, body.find(b"Sample 1"))
    assert int.from_bytes(data[at + 16 : at + 20], "little") == 127
    data[at + 16 : at + 20] = (224).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as err:
        open_validated(path)
    assert "/d" in str(err.value) and "Sample 1" in str(err.value)


def test_a_sound_table_type_is_checked_once_per_process(tmp_path, monkeypatch):
    """A table type found sound is remembered by its encoding: a second file of the same layout has its
    tables' type looked up, not walked member by member again; a type of another layout is still walked."""
    from h5stream.files import header_checks, validated

    monkeypatch.setattr(header_checks, "_sound_types", {})
    walked = []
    real = header_checks._check_type
    monkeypatch.setattr(header_checks, "_check_type",
                        lambda tid, path, obj, where, depth: (walked.append(obj) if depth == 0 else None,
                                                              real(tid, path, obj, where, depth))[1])
    for name in ("one.h5", "two.h5"):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("peaks", data=random_peaks(20, peaks_dtype(n_cut=8)))
    validated.open_validated(tmp_path / "one.h5").close()
    assert walked == ["/peaks"]
    validated.open_validated(tmp_path / "two.h5").close()
    assert walked == ["/peaks"]  # the same layout: not walked again
    with h5py.File(tmp_path / "three.h5", "w") as f:
        f.create_dataset("peaks", data=random_peaks(20, peaks_dtype(n_cut=9)))
    validated.open_validated(tmp_path / "three.h5").close()
    assert walked == ["/peaks", "/peaks"]
