"""A stimulus description names its noise movie relative to itself: it works from any folder and after a move.

The generator (and ``hdmea demo``) writes ``<name>.stimulus.json`` beside the noise movie; the path in it is
read back with plain ``json``.  The folder is then moved and the pipeline run from a third folder; a missing
noise movie is refused before anything runs, naming the file.
"""

from __future__ import annotations

import json
import shutil

import numpy as np

from hdmea.cli import main
from hdmea.stimulus import StimulusConfig
from hdmea.synthetic import generate_recording

CONFIG = '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n'


def test_a_moved_folder_runs_from_anywhere_and_a_missing_movie_is_caught_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    made = generate_recording("made", "rec", n_units=3, seed=4)  # a relative folder, as `hdmea demo --out x` gives
    stored = json.loads((tmp_path / "made" / "rec.stimulus.json").read_text())
    (movie,) = stored["noise_movies"].values()
    assert "/" not in movie["path"] and (tmp_path / "made" / movie["path"]).is_file(), movie

    shutil.move(tmp_path / "made", tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (elsewhere / "pipeline.toml").write_text(CONFIG)
    cmcr, cmtr = (tmp_path / "moved" / made.cmcr_path.name, tmp_path / "moved" / made.cmtr_path.name)
    code = main(["run", str(cmcr), str(cmtr), "--config", "pipeline.toml", "--out", "rec.h5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "compute_sta            ran" in out

    (tmp_path / "moved" / movie["path"]).unlink()
    code = main(["run", str(cmcr), str(cmtr), "--config", "pipeline.toml", "--out", "again.h5"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{tmp_path / 'moved' / movie['path']}: the noise movie of the stimulus does not exist" in err
    assert not (elsewhere / "again.h5").exists()


def test_a_description_written_with_a_path_from_the_working_folder_still_loads(tmp_path, monkeypatch):
    """Files written before paths were relative to the description: the movie is found from the working folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "movies").mkdir()
    np.save(tmp_path / "movies" / "noise.npy", np.zeros((5, 4, 4), dtype=np.uint8))
    (tmp_path / "desc").mkdir()
    (tmp_path / "desc" / "s.json").write_text(json.dumps({
        "playlist": ["noise"], "movie_lengths": {"noise": 10},
        "noise_movies": {"noise": {"path": "movies/noise.npy", "frames_per_image": 2, "shape": [4, 4],
                                   "n_images": 5}}}))
    loaded = StimulusConfig.load_json(tmp_path / "desc" / "s.json")
    assert loaded.noise_movies["noise"].load_frames().shape == (5, 4, 4)
    assert loaded.missing_inputs() == []
