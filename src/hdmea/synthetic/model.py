"""The planted world of a synthetic recording: display timeline, units and their spikes.

Units are linear-nonlinear-Poisson: the stimulus each unit sees on display frame
``f`` is projected on its spatial receptive field; the projections of frames
``f-1 ... f-L`` are weighted by its temporal filter (lag ``j+1`` by ``k[j]``), and
the exponential of that drive scales its base rate.  During the dense noise the
unit sees the noise images (contrast +-1 per check); elsewhere it sees the
full-field contrast (dark -1, gray 0, bright +1), which gives the ON/OFF step
responses.  Spikes of a frame fall uniformly within the frame's samples.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hdmea.io.mcs import GRID_SIZE, row_col_to_sensor_id
from hdmea.features.direction.bar_geometry import DIRECTION_LIST, MovingBar
from hdmea.stimulus import NoiseMovie, StimulusConfig, TrialConfig, occurrence_frame_ranges
from hdmea.synthetic.config import SyntheticConfig

__all__ = ["DisplayTimeline", "PlantedUnit", "build_timeline", "plant_units", "spike_trains"]


@dataclasses.dataclass
class DisplayTimeline:
    """What the display showed, frame by frame, and when (acquisition samples)."""

    stimulus: StimulusConfig
    frame_samples: np.ndarray  # counted display frames, int64
    sync_pulse_samples: np.ndarray  # all pulses including the leading ones
    n_samples: int  # length of the analog recording
    luminance: np.ndarray  # per frame, 0..1
    full_field_contrast: np.ndarray  # per frame, -1..1 (0 during noise)
    noise_image: np.ndarray  # per frame, image index shown, -1 outside the noise movie
    noise_frames: np.ndarray  # (n_images, h, w) uint8
    section_frames: dict[str, np.ndarray]  # movie -> (n_occ, 2) display frames [first, end)
    # the lab's other movies (all inert outside them): bar direction (NaN) and sweep frame (-1) per frame;
    # sinusoid frequency (0) and its phase-locked value; green and blue contrast (0)
    bar_direction: np.ndarray | None = None
    bar_sweep_frame: np.ndarray | None = None
    freq_hz: np.ndarray | None = None
    freq_wave: np.ndarray | None = None
    green: np.ndarray | None = None
    blue: np.ndarray | None = None


@dataclasses.dataclass
class PlantedUnit:
    mcs_unit_id: int
    sensor_id: int
    row: int
    col: int
    kind: str  # "on", "off" or "silent"
    base_rate_hz: float
    temporal_filter: np.ndarray  # (lags,), index j <-> lag j + 1 display frames
    spatial_rf: np.ndarray  # (h, w), unit L2 norm
    footprint: np.ndarray  # (65, 65) peak amplitude per sensor, microvolts
    waveform: np.ndarray  # (cutout_samples,) unit peak-normalised template
    snr: float
    separability: float
    preferred_direction_deg: float = 0.0
    direction_selective: bool = False
    green_weight: float = 0.5
    preferred_frequency_hz: float = 2.0

    def direction_gain(self, direction_deg, kappa: float) -> np.ndarray:
        """The planted response gain to a bar moving at ``direction_deg`` (1 for a unit that is not selective)."""
        d = np.deg2rad(np.asarray(direction_deg, dtype=np.float64) - self.preferred_direction_deg)
        return np.exp(kappa * (np.cos(d) - 1.0)) if self.direction_selective else np.ones_like(d)

    def frequency_gain(self, freq_hz, sigma_octaves: float) -> np.ndarray:
        """The planted depth factor of a sinusoid of ``freq_hz`` (0 where ``freq_hz`` is 0)."""
        f = np.asarray(freq_hz, dtype=np.float64)
        safe = np.where(f > 0, f, 1.0)
        g = np.exp(-np.log2(safe / self.preferred_frequency_hz) ** 2 / (2 * sigma_octaves**2))
        return np.where(f > 0, g, 0.0)

    @property
    def sta_filter(self) -> np.ndarray:
        """The planted spatio-temporal filter (lags, h, w); index j is lag j + 1."""
        return (self.temporal_filter[:, None, None] * self.spatial_rf[None]).astype(np.float32)

    def expected_sta(self, frames_per_image: int) -> np.ndarray:
        """The shape an STA over the noise converges to (up to scale): the filter blurred in time
        by the noise's autocorrelation (each image is held ``frames_per_image`` display frames)."""
        m = int(frames_per_image)
        d = np.arange(-(m - 1), m)
        autocorrelation = 1.0 - np.abs(d) / m
        blurred = np.convolve(self.temporal_filter, autocorrelation, mode="same") if m > 1 else self.temporal_filter
        return (blurred[:, None, None] * self.spatial_rf[None]).astype(np.float32)


def build_timeline(cfg: SyntheticConfig, rng: np.random.Generator, noise_path: str) -> DisplayTimeline:
    layouts = cfg.lab_movie_layouts()
    stimulus = StimulusConfig(
        playlist=list(cfg.playlist),
        movie_lengths={cfg.step_movie: cfg.step_movie_length, cfg.noise_movie: cfg.noise_movie_length,
                       **{m: trial * repeat for m, (trial, repeat) in layouts.items()}},
        trial_configs={cfg.step_movie: cfg.step_trial,
                       **{m: TrialConfig(start_frame=0, trial_length_frame=trial, repeat=repeat)
                          for m, (trial, repeat) in layouts.items() if repeat > 1 or m != cfg.baseline_movie}},
        noise_movies={
            cfg.noise_movie: NoiseMovie(
                path=noise_path, frames_per_image=cfg.noise_frames_per_image,
                shape=tuple(cfg.noise_shape), n_images=cfg.noise_images,
            )
        },
        pre_margin_frames=cfg.pre_margin_frames,
        post_margin_frames=cfg.post_margin_frames,
    )
    n_frames = stimulus.total_frames
    period = cfg.frame_period_samples
    first_pulse = int(round(cfg.lead_in_s * cfg.sampling_rate))
    pulse_index = np.arange(cfg.lead_pulses + n_frames, dtype=np.float64)
    sync = first_pulse + np.rint(pulse_index * period).astype(np.int64)
    frame_samples = sync[cfg.lead_pulses:]
    n_samples = int(frame_samples[-1] + round(period) + round(cfg.tail_s * cfg.sampling_rate))

    noise_frames = (rng.integers(0, 2, size=(cfg.noise_images, *cfg.noise_shape)) * 255).astype(np.uint8)

    luminance = np.full(n_frames, 0.5)
    contrast = np.zeros(n_frames)
    noise_image = np.full(n_frames, -1, dtype=np.int64)
    section_frames = occurrence_frame_ranges(stimulus)
    lab = _LabMovies(cfg, n_frames)
    tc = cfg.step_trial
    on_start = tc.trial_length_frame // 10
    on_end = on_start + tc.trial_length_frame // 2
    for movie, ranges in section_frames.items():
        for first, _end in ranges:
            movie_first = first + cfg.pre_margin_frames
            if movie == cfg.step_movie:
                for n in range(tc.repeat):
                    t0 = movie_first + tc.start_frame + n * tc.trial_length_frame
                    contrast[t0:t0 + tc.trial_length_frame] = -1.0
                    contrast[t0 + on_start:t0 + on_end] = 1.0
                luminance[movie_first:movie_first + cfg.step_movie_length] = 0.5 + 0.5 * contrast[
                    movie_first:movie_first + cfg.step_movie_length]
            elif movie in lab.layouts:
                lab.show(movie, movie_first)
            else:
                length = cfg.noise_movie_length
                idx = np.arange(length) // cfg.noise_frames_per_image
                noise_image[movie_first:movie_first + length] = idx
                luminance[movie_first:movie_first + length] = noise_frames[idx].mean(axis=(1, 2)) / 255.0
    luminance = np.where(lab.freq_hz > 0, 0.5 + 0.5 * lab.freq_wave, luminance)
    in_color = (lab.green != 0) | (lab.blue != 0)
    luminance = np.where(in_color, 0.25 * (2.0 + lab.green + lab.blue), luminance)
    return DisplayTimeline(
        stimulus=stimulus, frame_samples=frame_samples, sync_pulse_samples=sync, n_samples=n_samples,
        luminance=luminance, full_field_contrast=contrast, noise_image=noise_image,
        noise_frames=noise_frames, section_frames=section_frames,
        bar_direction=lab.bar_direction, bar_sweep_frame=lab.bar_sweep_frame, freq_hz=lab.freq_hz,
        freq_wave=lab.freq_wave, green=lab.green, blue=lab.blue,
    )


class _LabMovies:
    """Per-frame description of the lab's other movies (gray screen, moving bar, frequency and colour steps)."""

    def __init__(self, cfg: SyntheticConfig, n_frames: int) -> None:
        self.cfg = cfg
        self.layouts = cfg.lab_movie_layouts()
        self.bar_direction = np.full(n_frames, np.nan)
        self.bar_sweep_frame = np.full(n_frames, -1, dtype=np.int64)
        self.freq_hz = np.zeros(n_frames)
        self.freq_wave = np.zeros(n_frames)
        self.green = np.zeros(n_frames)
        self.blue = np.zeros(n_frames)

    def show(self, movie: str, first: int) -> None:
        cfg = self.cfg
        trial, repeat = self.layouts[movie]
        for n in range(repeat):
            t0 = first + n * trial
            if movie == cfg.bar_movie:
                for d, direction in enumerate(DIRECTION_LIST):
                    a = t0 + d * cfg.bar_sweep_frames
                    self.bar_direction[a:a + cfg.bar_sweep_frames] = direction
                    self.bar_sweep_frame[a:a + cfg.bar_sweep_frames] = np.arange(cfg.bar_sweep_frames)
            elif movie == cfg.freq_movie:
                span = cfg.freq_step_frames + cfg.freq_break_frames
                k = np.arange(cfg.freq_step_frames)
                for i, f in enumerate(cfg.freq_list_hz):
                    a = t0 + i * span
                    self.freq_hz[a:a + cfg.freq_step_frames] = f
                    self.freq_wave[a:a + cfg.freq_step_frames] = np.sin(2 * np.pi * f * k / cfg.display_rate)
            elif movie == cfg.color_movie:
                step, gap = cfg.color_step_frames, cfg.color_gap_frames
                self.green[t0:t0 + trial] = -1.0
                self.blue[t0:t0 + trial] = -1.0
                self.green[t0:t0 + step] = 1.0
                self.blue[t0 + step + gap:t0 + 2 * step + gap] = 1.0
            # the gray screen (baseline movie) leaves every array at its inert value


def _temporal_filter(lags: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(1, lags + 1, dtype=np.float64)
    peak = rng.uniform(3.0, 6.0)
    k = np.exp(-((t - peak) ** 2) / (2 * 1.5**2)) - 0.45 * np.exp(-((t - 2.2 * peak) ** 2) / (2 * 3.0**2))
    return k / np.abs(k).sum()


def _waveform(cfg: SyntheticConfig) -> np.ndarray:
    t = np.arange(cfg.cutout_samples, dtype=np.float64) - cfg.cutout_pre_samples
    w = -np.exp(-(t**2) / (2 * 1.6**2)) + 0.35 * np.exp(-((t - 7.0) ** 2) / (2 * 4.0**2))
    return w / np.abs(w).max()


def plant_units(cfg: SyntheticConfig, rng: np.random.Generator) -> list[PlantedUnit]:
    n = cfg.n_units
    # Sparse, unordered unit ids so that readers must sort numerically.
    ids = np.sort(rng.choice(np.arange(1, 3 * n + 2), size=n, replace=False))
    # Distinct centre sensors away from the border so footprints stay on the grid.
    grid_cells = rng.choice((GRID_SIZE - 8) ** 2, size=n, replace=False)
    rows = grid_cells % (GRID_SIZE - 8) + 5
    cols = grid_cells // (GRID_SIZE - 8) + 5
    h, w = cfg.noise_shape
    yy, xx = np.mgrid[0:h, 0:w]
    gy, gx = np.mgrid[1:GRID_SIZE + 1, 1:GRID_SIZE + 1]
    waveform = _waveform(cfg)
    silent = set(rng.choice(n, size=cfg.n_silent_units, replace=False).tolist()) if cfg.n_silent_units else set()
    units = []
    for i in range(n):
        kind = "silent" if i in silent else ("on" if i % 2 == 0 else "off")
        cy, cx = rng.uniform(2, h - 3), rng.uniform(2, w - 3)
        sigma = rng.uniform(*cfg.rf_sigma_checks)
        rf = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        rf /= np.linalg.norm(rf)
        k = _temporal_filter(cfg.filter_lags, rng)
        if kind == "off":
            k = -k
        amp = rng.uniform(*cfg.footprint_amplitude_uv)
        fs = rng.uniform(*cfg.footprint_sigma_sensors)
        row, col = int(rows[i]), int(cols[i])
        footprint = amp * np.exp(-((gy - row) ** 2 + (gx - col) ** 2) / (2 * fs**2))
        units.append(
            PlantedUnit(
                mcs_unit_id=int(ids[i]), sensor_id=row_col_to_sensor_id(row, col), row=row, col=col,
                kind=kind, base_rate_hz=0.0 if kind == "silent" else float(rng.uniform(*cfg.base_rate_hz)),
                temporal_filter=k, spatial_rf=rf, footprint=footprint, waveform=waveform,
                snr=float(amp / cfg.noise_uv), separability=float(rng.uniform(5, 30)),
            )
        )
    _plant_tuning(units, cfg)
    return units


def _plant_tuning(units: list[PlantedUnit], cfg: SyntheticConfig) -> None:
    # A generator of its own: the draws above (and so every recording made before) stay as they were.
    rng = np.random.default_rng([cfg.seed, 424242])
    responsive = [u for u in units if u.kind != "silent"]
    for i, unit in enumerate(responsive):
        unit.preferred_direction_deg = float(rng.uniform(0.0, 360.0))
        unit.direction_selective = i % 4 in (0, 3)  # ON and OFF units among them (kinds alternate)
        unit.green_weight = 0.85 if (i // 2) % 2 == 0 else 0.15
        unit.preferred_frequency_hz = (1.0, 2.0, 4.0)[i % 3]


def _projected_stimulus(unit: PlantedUnit, tl: DisplayTimeline, cfg: SyntheticConfig) -> np.ndarray:
    contrast_images = tl.noise_frames.astype(np.float64) / 127.5 - 1.0
    per_image = np.tensordot(contrast_images, unit.spatial_rf, axes=([1, 2], [0, 1]))
    p = tl.full_field_contrast * unit.spatial_rf.sum() * cfg.full_field_scale
    in_noise = tl.noise_image >= 0
    p[in_noise] = per_image[tl.noise_image[in_noise]]
    if tl.green is not None and (np.any(tl.green) or np.any(tl.blue)):
        colour = unit.green_weight * tl.green + (1.0 - unit.green_weight) * tl.blue
        p = p + colour * unit.spatial_rf.sum() * cfg.full_field_scale
    if tl.bar_sweep_frame is not None and np.any(tl.bar_sweep_frame >= 0):
        p = p + _bar_drive(unit, tl, cfg)
    return p


def _bar_drive(unit: PlantedUnit, tl: DisplayTimeline, cfg: SyntheticConfig) -> np.ndarray:
    """The receptive field's weight under the bar on each frame, scaled by the unit's direction gain."""
    bar = MovingBar(bar_width_px=cfg.bar_width_px, speed_px=cfg.bar_speed_px, sweep_frames=cfg.bar_sweep_frames)
    drive = np.zeros(tl.bar_sweep_frame.size)
    for direction in DIRECTION_LIST:
        covered = bar.coverage(unit.spatial_rf.shape, direction)
        per_frame = np.tensordot(covered.astype(np.float64), unit.spatial_rf, axes=([1, 2], [0, 1]))
        at = np.flatnonzero(tl.bar_direction == direction)
        gain = float(unit.direction_gain(direction, cfg.direction_kappa))
        drive[at] = per_frame[tl.bar_sweep_frame[at]] * gain * cfg.full_field_scale * cfg.bar_scale
    return drive


def spike_trains(units: list[PlantedUnit], tl: DisplayTimeline, cfg: SyntheticConfig,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Sorted, distinct spike samples of each unit (int64)."""
    fs = cfg.sampling_rate
    edges = np.append(tl.frame_samples, tl.frame_samples[-1] + int(round(cfg.frame_period_samples)))
    frame_len = np.diff(edges)
    out = []
    for unit in units:
        if unit.kind == "silent":
            out.append(np.zeros(0, dtype=np.int64))
            continue
        p = _projected_stimulus(unit, tl, cfg)
        lags = unit.temporal_filter.size
        drive = np.convolve(p, np.concatenate([[0.0], unit.temporal_filter]))[: p.size]
        if tl.freq_hz is not None and np.any(tl.freq_hz > 0):
            # the sinusoids drive the rate directly (one frame late), with the planted frequency preference
            depth = cfg.freq_depth * unit.frequency_gain(tl.freq_hz, cfg.frequency_sigma_octaves)
            drive = drive + np.concatenate([[0.0], (depth * tl.freq_wave)[:-1]]) / cfg.gain
        rate = np.minimum(unit.base_rate_hz * np.exp(cfg.gain * drive), cfg.max_rate_hz)
        del lags
        counts = rng.poisson(rate * frame_len / fs)
        starts = np.repeat(edges[:-1], counts)
        spans = np.repeat(frame_len, counts)
        during = starts + np.floor(rng.random(starts.size) * spans).astype(np.int64)
        # Baseline firing before the first and after the last frame.
        outside = []
        for lo, hi in ((0, edges[0]), (edges[-1], tl.n_samples)):
            k = rng.poisson(unit.base_rate_hz * (hi - lo) / fs)
            outside.append(rng.integers(lo, hi, size=k) if hi > lo else np.zeros(0, dtype=np.int64))
        spikes = np.unique(np.concatenate([during, *outside]).astype(np.int64))
        # Keep spikes whose cutout fits inside the recording.
        keep = (spikes >= cfg.cutout_pre_samples) & (spikes + cfg.cutout_samples < tl.n_samples)
        out.append(spikes[keep])
    return out
