"""Parameters of a synthetic recording."""

from __future__ import annotations

import dataclasses

from hdmea.errors import ConfigError
from hdmea.stimulus import TrialConfig

__all__ = ["SyntheticConfig"]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Everything that shapes a synthetic ``.cmcr``/``.cmtr`` pair and its ground truth.

    Time runs on the acquisition clock (``sampling_rate`` samples per second).  The
    display shows ``display_rate`` frames per second; each frame starts with a
    frame-sync pulse, and ``lead_pulses`` extra pulses precede the first counted
    frame (the lab's pipeline drops them).  The playlist alternates step movies and
    a dense-noise movie; every entry is padded by ``pre_margin_frames`` and
    ``post_margin_frames`` gray frames.
    """

    # clocks
    sampling_rate: float = 20000.0
    display_rate: float = 60.0
    lead_in_s: float = 0.5
    tail_s: float = 0.5
    lead_pulses: int = 4
    sync_pulse_fraction: float = 0.25

    # stimulus
    playlist: tuple[str, ...] = ("step_up_5s_5i_3x", "dense_noise_15x15", "step_up_5s_5i_3x")
    step_movie: str = "step_up_5s_5i_3x"
    step_trial: TrialConfig = TrialConfig(start_frame=24, trial_length_frame=60, repeat=3)
    step_tail_frames: int = 6
    noise_movie: str = "dense_noise_15x15"
    noise_shape: tuple[int, int] = (15, 15)
    noise_frames_per_image: int = 4
    noise_images: int = 150
    pre_margin_frames: int = 60
    post_margin_frames: int = 120

    # The lab's other movies, shown only when the playlist names them (see ``with_lab_stimuli``): a gray
    # screen; a bar moving in 8 directions (one sweep each per trial); full-field sinusoids at each
    # frequency of ``freq_list_hz`` (a step of ``freq_step_frames`` then a gray break each); a green step then
    # a blue step, each followed by a dark gap.
    baseline_movie: str = "baseline_127"
    baseline_frames: int = 180
    bar_movie: str = "moving_h_bar_s5_d8_3x"
    bar_sweep_frames: int = 100
    bar_width_px: float = 50.0
    bar_speed_px: float = 5.0
    bar_repeat: int = 3
    bar_scale: float = 1.0
    freq_movie: str = "freq_step_5st_3x"
    freq_list_hz: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 10.0)
    freq_step_frames: int = 240
    freq_break_frames: int = 60
    freq_repeat: int = 3
    freq_depth: float = 0.6
    color_movie: str = "green_blue_3s_3i_3x"
    color_step_frames: int = 180
    color_gap_frames: int = 180
    color_repeat: int = 3
    # Planted tuning (drawn from a generator of its own, so recordings without these movies are unchanged):
    # direction-selective units (responsive units 0, 3, 4, 7, 8, ...: ON and OFF ones) respond to a bar
    # moving at angle d with the gain exp(kappa * (cos(d - preferred) - 1)); a unit's sensitivity to green
    # is ``green_weight`` (0.85 or 0.15, in pairs of units) and to blue 1 - green_weight; it follows a
    # sinusoid of frequency f with the depth freq_depth * exp(-log2(f / preferred)^2 / (2 sigma^2)),
    # preferred in {1, 2, 4} Hz.
    direction_kappa: float = 2.0
    frequency_sigma_octaves: float = 0.5

    # units
    n_units: int = 6
    n_silent_units: int = 1
    base_rate_hz: tuple[float, float] = (6.0, 14.0)
    max_rate_hz: float = 150.0
    gain: float = 2.5
    full_field_scale: float = 0.35
    filter_lags: int = 30
    rf_sigma_checks: tuple[float, float] = (1.2, 2.0)
    excluded_peak_fraction: float = 0.15
    cutout_samples: int = 40
    cutout_pre_samples: int = 10

    # raw sensor data: 1.5 s give each firing unit enough spikes (>= 5) for sensor_axis_order="auto"
    # to decide the frame order by the units' footprints (hdmea.io.frame_order); tiny() writes 1.0 s
    raw_seconds: float = 1.5
    raw_dtype: str = "uint16"
    noise_uv: float = 8.0
    footprint_amplitude_uv: tuple[float, float] = (60.0, 180.0)
    footprint_sigma_sensors: tuple[float, float] = (1.0, 2.0)
    # Per-sensor gain: factor ~ 1000 * (1 + spread * U(-1, 1)) with Exponent -9 (about 1 uV per
    # count, written as the 'Conversion Factors' text); 0 writes factor 1 with Exponent -6.
    sensor_gain_spread: float = 0.0
    # Regions of interest (top, left, bottom, right), 1-based inclusive chip rows/columns,
    # one 'SensorData {k} 1' each; None: the whole chip.
    sensor_regions: tuple[tuple[int, int, int, int], ...] | None = None
    raw_block_frames: int = 2048
    noise_bank_frames: int = 8192
    write_source: bool = True

    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampling_rate <= 0 or self.display_rate <= 0:
            raise ConfigError("sampling_rate and display_rate must be positive")
        if self.sampling_rate / self.display_rate < 8:
            raise ConfigError("the display frame must span at least 8 samples")
        if not 0 <= self.n_silent_units <= self.n_units:
            raise ConfigError(f"n_silent_units must be within 0..n_units, found {self.n_silent_units}")
        if self.raw_dtype not in ("uint16", "int16"):
            raise ConfigError(f"raw_dtype must be 'uint16' or 'int16', found {self.raw_dtype!r}")
        if not 0 <= self.sensor_gain_spread < 1:
            raise ConfigError(f"sensor_gain_spread must be within [0, 1), found {self.sensor_gain_spread}")
        if self.sensor_regions is not None:
            if not self.sensor_regions:
                raise ConfigError("sensor_regions must name at least one region, or be None for the whole chip")
            for region in self.sensor_regions:
                if len(region) != 4 or not (1 <= region[0] <= region[2] <= 65 and 1 <= region[1] <= region[3] <= 65):
                    raise ConfigError(f"sensor_regions: expected (top, left, bottom, right) within 1..65, found {region}")
        if self.raw_seconds < 0:
            raise ConfigError("raw_seconds must be >= 0")
        if not 0 <= self.cutout_pre_samples < self.cutout_samples:
            raise ConfigError("cutout_pre_samples must lie inside the cutout")
        if self.noise_movie not in self.playlist and self.step_movie not in self.playlist:
            raise ConfigError("the playlist shows neither the step movie nor the noise movie")
        unknown = set(self.playlist) - {self.noise_movie, self.step_movie, self.baseline_movie, self.bar_movie,
                                        self.freq_movie, self.color_movie}
        if unknown:
            raise ConfigError(f"playlist names unknown movies {sorted(unknown)}")

    @property
    def frame_period_samples(self) -> float:
        return self.sampling_rate / self.display_rate

    @property
    def step_movie_length(self) -> int:
        return self.step_trial.end_frame + self.step_tail_frames

    @property
    def noise_movie_length(self) -> int:
        return self.noise_images * self.noise_frames_per_image

    @property
    def bar_trial_frames(self) -> int:
        return 8 * self.bar_sweep_frames

    @property
    def freq_trial_frames(self) -> int:
        return len(self.freq_list_hz) * (self.freq_step_frames + self.freq_break_frames)

    @property
    def color_trial_frames(self) -> int:
        return 2 * (self.color_step_frames + self.color_gap_frames)

    def lab_movie_layouts(self) -> dict[str, tuple[int, int]]:
        """(trial length, repeats) of each of the lab's other movies in the playlist (a movie is its trials)."""
        layouts = {self.baseline_movie: (self.baseline_frames, 1), self.bar_movie: (self.bar_trial_frames, self.bar_repeat),
                   self.freq_movie: (self.freq_trial_frames, self.freq_repeat),
                   self.color_movie: (self.color_trial_frames, self.color_repeat)}
        return {m: layouts[m] for m in layouts if m in self.playlist}

    @classmethod
    def tiny(cls, **overrides) -> SyntheticConfig:
        """A recording that generates in a few seconds (the default of ``generate_recording``): 1.0 s of raw
        data, enough for ``sensor_axis_order="auto"`` to decide the frame order by the units' footprints
        (it does on seeds 0 and 2-9; on seeds 1 and 10 three units have a footprint to test, four needed:
        the others sit on the chip's diagonal, where both readings agree, or fire fewer than 5 spikes in
        that second, and the recording says so).  The noise bank is 2048 frames (0.1 s,
        repeated): drawing the noise is most of the generator's time.  Pass ``raw_seconds=0.1`` where a
        test needs no decision and every second counts."""
        return dataclasses.replace(cls(raw_seconds=1.0, noise_bank_frames=2048), **overrides)

    @classmethod
    def with_lab_stimuli(cls, **overrides) -> SyntheticConfig:
        """The lab's movie set under its names: gray screen, light step, dense noise, moving bar, green-blue
        steps and frequency steps, with planted ON/OFF, direction, colour and frequency preferences.

        Small by default (about 5 minutes of display; 6 units): pass overrides for lab sizes.
        """
        base = cls(
            playlist=("baseline_127", "step_up_5s_5i_3x", "perfect_dense_noise_15x15_15hz_r42_3min",
                      "moving_h_bar_s5_d8_3x", "green_blue_3s_3i_3x", "freq_step_5st_3x"),
            noise_movie="perfect_dense_noise_15x15_15hz_r42_3min",
            step_trial=TrialConfig(start_frame=0, trial_length_frame=600, repeat=3),
            noise_images=1200, noise_frames_per_image=4, gain=4.0, bar_scale=2.0, base_rate_hz=(10.0, 16.0),
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def moderate(cls, **overrides) -> SyntheticConfig:
        """Lab-sized stimulus: 3 min dense noise (10,800 frames at 15 Hz), full step trials.

        Units fire fast enough that most collect more than 2,000 spikes during the noise.
        """
        base = cls(
            step_trial=TrialConfig(start_frame=240, trial_length_frame=600, repeat=3),
            step_tail_frames=60,
            noise_images=2700,
            n_units=8,
            n_silent_units=1,
            base_rate_hz=(14.0, 24.0),
            filter_lags=30,
            raw_seconds=1.0,
        )
        return dataclasses.replace(base, **overrides)
