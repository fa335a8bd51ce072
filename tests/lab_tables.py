"""The lab's stimulus tables written by hand, and the section times the original derives from them.

``playlist.csv`` and ``movie_length.csv`` in the original's format (hdmea_processing's own fixtures), and
the original's section layout computed by hand: each playlist entry is pad + movie + 1 + pad frames, and a
section runs from ``pre`` frames before the movie to ``post`` frames after its last frame + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PAD = 180  # the original's pad_frame


def write_lab_tables(folder: Path, stimulus, other_movie: str) -> tuple[Path, Path]:
    """``playlist.csv`` (playlist ``set_t`` = the stimulus's playlist, ``other`` = ``other_movie``) and
    ``movie_length.csv`` in ``folder``."""
    playlist = folder / "playlist.csv"
    movies = ", ".join(f"'{m}.mov'" for m in stimulus.playlist)
    playlist.write_text(f'playlist_name,movie_names\nset_t,"[{movies}]"\nother,"[\'{other_movie}\']"\n')
    lengths = folder / "movie_length.csv"
    lengths.write_text("movie_name,movie_length\n" + "".join(
        f"{name},{length}\n" for name, length in stimulus.movie_lengths.items()))
    return playlist, lengths


def expected_sections(stimulus, frame_times, pre=60, post=120) -> dict[str, np.ndarray]:
    """Each movie's [start, end] frame times as the original's layout gives them, by hand."""
    out, cursor = {}, 0
    for movie in stimulus.playlist:
        length = stimulus.movie_lengths[movie]
        first, last = cursor + PAD - pre, cursor + PAD + length + 1 + post
        out.setdefault(movie, []).append([frame_times[first], frame_times[last]])
        cursor += 2 * PAD + length + 1
    return {m: np.asarray(v, dtype=np.int64) for m, v in out.items()}
