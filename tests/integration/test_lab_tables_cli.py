"""A lab member's recordings from the command line: ``[stimulus]`` names the lab's playlist.csv and movie_length.csv.

The tables are written by hand in hdmea_processing's format (``playlist_name,movie_names`` with a Python list
of ``.mov`` names; ``movie_name,movie_length``); the recording is synthetic, laid out as the original lays a
playlist out (180 gray frames before every movie, 181 after).  ``hdmea run`` and ``hdmea batch`` section it
where a hand computation of that layout says, from the planted frame times; a wrong table or name is one line
naming the key, exit 2.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.cli import main
from tests.lab_tables import PAD, write_lab_tables
from tests.lab_tables import expected_sections as _expected_sections



@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("lab_tables")
    rec = generate_recording(out / "recordings", "2025.04.10-11.12.57-Rec", seed=7,
                             config=SyntheticConfig.tiny(pre_margin_frames=PAD, post_margin_frames=PAD + 1))
    write_lab_tables(out, rec.stimulus, "x.mov")
    config = out / "lab.toml"
    config.write_text('[stimulus]\nplaylist_file = "playlist.csv"\nmovie_length_file = "movie_length.csv"\n'
                      'playlist_name = "set_t"\n\n[steps]\ncompute_sta = false\n')
    return rec, out, config


def _sections(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        group = f["stimulus/section_time"]
        return {name: group[name][()].astype(np.int64) for name in group}


def test_run_and_batch_take_the_lab_tables(lab, tmp_path, capsys):
    rec, _out, config = lab
    expected = _expected_sections(rec.stimulus, rec.truth().frame_times)
    out = tmp_path / "run" / "rec.h5"
    assert main(["run", str(rec.cmcr_path), str(rec.cmtr_path), "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "add_section_time       ran" in printed and "section_spike_times    ran" in printed, printed
    found = _sections(out)
    assert sorted(found) == sorted(expected)
    for movie, pairs in expected.items():
        np.testing.assert_array_equal(found[movie], pairs)

    assert main(["batch", str(rec.cmcr_path.parent), "--config", str(config), "--out", str(tmp_path / "batch"),
                 "--workers", "1", "--no-verify-inputs"]) == 0
    capsys.readouterr()
    batch = _sections(tmp_path / "batch" / f"{rec.cmcr_path.stem}.h5")
    for movie, pairs in expected.items():
        np.testing.assert_array_equal(batch[movie], pairs)


@pytest.mark.parametrize("change,key,words", [
    (("set_t", "set_x"), "stimulus.playlist_name", ["no playlist 'set_x'", "set_t"]),
    (("playlist.csv", "playlists.csv"), "stimulus.playlist_file", ["file does not exist", "playlists.csv"]),
    (('playlist_name = "set_t"\n', 'playlist_name = "set_t"\nrepeats = 0\n'), "stimulus.repeats", [">= 1"]),
    (('playlist_name = "set_t"\n', 'playlist_name = "set_t"\nfile = "x.json"\n'), "stimulus.file",
     ["cannot be combined"]),
])
def test_a_wrong_table_or_name_is_one_line_naming_the_key(lab, tmp_path, capsys, change, key, words):
    rec, out, config = lab
    bad = out / f"bad_{key.split('.')[-1]}.toml"
    bad.write_text(config.read_text().replace(*change))
    code = main(["run", str(rec.cmcr_path), str(rec.cmtr_path), "--config", str(bad), "--out",
                 str(tmp_path / "x.h5")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert f"{bad}: {key}" in err, err
    for word in words:
        assert word in err, err
