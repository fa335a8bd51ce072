"""Generate a synthetic recording: ``.cmcr`` + ``.cmtr`` pair, stimulus files and ground truth."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from h5stream.errors import TargetExistsError
from hdmea.errors import ConfigError
from hdmea.stimulus import StimulusConfig
from hdmea.synthetic.config import SyntheticConfig
from hdmea.synthetic.mcs_writer import relative_link_target, write_cmcr, write_cmtr
from hdmea.synthetic.model import build_timeline, plant_units, spike_trains
from hdmea.synthetic.truth import GroundTruth, load_truth, write_truth

__all__ = ["SyntheticRecording", "generate_recording"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


@dataclasses.dataclass
class SyntheticRecording:
    """Paths of a generated recording and the configuration that made it."""

    cmcr_path: Path
    cmtr_path: Path
    truth_path: Path
    stimulus_path: Path
    noise_movie_path: Path
    config: SyntheticConfig
    stimulus: StimulusConfig

    def truth(self) -> GroundTruth:
        return load_truth(self.truth_path)


def _fit_duration(cfg: SyntheticConfig, duration_s: float) -> SyntheticConfig:
    """The config whose noise movie makes the playlist last about ``duration_s`` seconds."""
    n_noise = cfg.playlist.count(cfg.noise_movie)
    if n_noise == 0:
        raise ConfigError("duration_s needs the noise movie in the playlist (its length is what is fitted)")
    margins = cfg.pre_margin_frames + cfg.post_margin_frames
    fixed = len(cfg.playlist) * margins + cfg.playlist.count(cfg.step_movie) * cfg.step_movie_length
    fixed += sum(cfg.playlist.count(m) * trial * repeat for m, (trial, repeat) in cfg.lab_movie_layouts().items())
    free = duration_s * cfg.display_rate - fixed
    images = int(round(free / (n_noise * cfg.noise_frames_per_image)))
    if images < 1:
        raise ConfigError(
            f"duration_s={duration_s} is shorter than the playlist without noise "
            f"({fixed / cfg.display_rate:.1f} s); pass a longer duration or shorten the playlist"
        )
    return dataclasses.replace(cfg, noise_images=images)


def generate_recording(
    out_dir: str | os.PathLike,
    name: str = "rec",
    *,
    config: SyntheticConfig | None = None,
    seed: int | None = None,
    duration_s: float | None = None,
    overwrite: bool = False,
    **overrides,
) -> SyntheticRecording:
    """Write ``<name>.cmcr``, ``<name>.cmtr``, ``<name>.truth.h5``, ``<name>.stimulus.json`` and the noise movie.

    Parameters
    ----------
    out_dir
        Existing or new directory for the files.
    name
        Stem of every file.
    config
        A :class:`SyntheticConfig` (default: ``SyntheticConfig.tiny()``).
    seed
        Overrides ``config.seed``.
    duration_s
        Approximate length of the displayed stimulus in seconds: the dense-noise
        movie is lengthened or shortened to fit (the step movies keep their size).
    overwrite
        Replace files that exist already.
    **overrides
        Fields of :class:`SyntheticConfig` to change, e.g. ``n_units=400, raw_seconds=2.0``.

    Returns
    -------
    SyntheticRecording
    """
    cfg = config or SyntheticConfig.tiny()
    if seed is not None:
        overrides["seed"] = seed
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(SyntheticConfig)}
        if unknown:
            raise ConfigError(f"unknown synthetic recording parameters: {sorted(unknown)}")
        cfg = dataclasses.replace(cfg, **overrides)
    if duration_s is not None:
        cfg = _fit_duration(cfg, float(duration_s))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "cmcr": out / f"{name}.cmcr",
        "cmtr": out / f"{name}.cmtr",
        "truth": out / f"{name}.truth.h5",
        "stimulus": out / f"{name}.stimulus.json",
        "noise": out / f"{name}.{cfg.noise_movie}.npy",
    }
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise TargetExistsError(
                "synthetic recording files exist already", path=out / name, found=", ".join(existing),
                hint="pass overwrite=True to replace them",
            )

    rng = np.random.default_rng(cfg.seed)
    tl = build_timeline(cfg, rng, str(paths["noise"]))
    units = plant_units(cfg, rng)
    spikes = spike_trains(units, tl, cfg, rng)
    excluded = []
    for s in spikes:
        k = int(round(cfg.excluded_peak_fraction * max(s.size, 20)))
        cand = rng.integers(cfg.cutout_pre_samples, tl.n_samples - cfg.cutout_samples, size=k)
        excluded.append(np.setdiff1d(np.unique(cand), s).astype(np.int64))

    np.save(paths["noise"], tl.noise_frames, allow_pickle=False)
    tl.stimulus.save_json(paths["stimulus"])
    raw_frames = write_cmcr(paths["cmcr"], tl, units, spikes, cfg, rng)
    write_cmtr(paths["cmtr"], relative_link_target(paths["cmtr"], paths["cmcr"]), tl, units, spikes,
               excluded, cfg, rng, raw_frames)

    section_times = {}
    for movie, frames in tl.section_frames.items():
        section_times[movie] = np.stack(
            [tl.frame_samples[frames[:, 0]], tl.frame_samples[frames[:, 1] - 1]], axis=1
        )
    noise_ranges = tl.section_frames.get(cfg.noise_movie, np.zeros((0, 2), np.int64))
    j = np.arange(cfg.noise_movie_length)
    noise_display_frames = noise_ranges[:, :1] + cfg.pre_margin_frames + j[None, :]
    noise_display_images = np.broadcast_to(j // cfg.noise_frames_per_image, noise_display_frames.shape).copy()
    write_truth(
        paths["truth"],
        frames_per_image=cfg.noise_frames_per_image,
        attrs=dict(
            sampling_rate=cfg.sampling_rate, display_rate=cfg.display_rate, n_samples=tl.n_samples,
            raw_frames=raw_frames, lead_pulses=cfg.lead_pulses, frame_period_samples=cfg.frame_period_samples,
            noise_movie=cfg.noise_movie, step_movie=cfg.step_movie, filter_lag_of_index0=1,
        ),
        frame_times=tl.frame_samples, sync=tl.sync_pulse_samples, section_times=section_times,
        section_frames=tl.section_frames, noise_frames=tl.noise_frames,
        noise_display_frames=noise_display_frames, noise_display_images=noise_display_images,
        units=units, spikes=spikes, excluded=excluded,
    )
    logger.info("generated synthetic recording %s (%d units, %d samples, %d raw frames)",
                paths["cmcr"], len(units), tl.n_samples, raw_frames)
    return SyntheticRecording(
        cmcr_path=paths["cmcr"], cmtr_path=paths["cmtr"], truth_path=paths["truth"],
        stimulus_path=paths["stimulus"], noise_movie_path=paths["noise"], config=cfg, stimulus=tl.stimulus,
    )
