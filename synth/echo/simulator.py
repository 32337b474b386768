"""An ECG-paired apical four-chamber echo phantom: chamber walls move as a given ECG times the heart cycle.

No public dataset pairs ECGs with echo videos, so ``synth`` makes its own pairs: real ECGs (PTB-XL) drive a
geometric phantom. It is a phantom, not an anatomy model; what it gets right is *timing* and *volumes*:

- Timing (:mod:`synth.echo.timing`): each R-peak is end-diastole; after ~50 ms of isovolumic contraction the LV
  ejects until the T-wave end (end-systole); ~60 ms of isovolumic relaxation, rapid filling to 75 % of the stroke
  volume, diastasis to 85 %, and the atrial kick over the last 150 ms before the next R-peak. Atria fill while
  the ventricles empty. A real ECG thus gives real beat-to-beat variation (arrhythmia included).
- Volumes: EDV and EF are parameters (ESV = EDV · (1 − EF)); the LV is a prolate ellipsoid, V ∝ L · s², whose
  short axis s shortens more than its long axis L (exponents 1.2 and 0.6 of (V/EDV)^(1/3)); the apex stays put
  and the mitral annulus moves towards it, as in real hearts. The RV follows with a lower ejection fraction.
- Image: apical sector (apex at the top, LV on the right of the screen, as in EchoNet-Dynamic), bright myocardium
  and septum, dark blood pools, multiplicative speckle from filtered complex Gaussian noise that decorrelates
  slowly over time, depth attenuation with time-gain compensation left partial, log compression. 112×112 grey.

Everything random comes from one ``numpy.random.Generator`` seeded by the caller: the same seed and ECG give the
same video, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage as ndi

from synth.echo.timing import BeatTimes, beat_times, extended_beats
from synth.errors import DataError

#: Frame geometry of EchoNet-Dynamic videos.
SIZE = 112


@dataclass(frozen=True)
class PhantomParams:
    """Per-clip anatomy and acquisition; :func:`random_params` draws plausible ones."""

    ef: float = 0.60  #: LV ejection fraction in (0, 1)
    edv_ml: float = 120.0  #: LV end-diastolic volume
    rv_ef: float = 0.50
    la_scale: float = 1.0  #: left-atrium size relative to default
    tilt_deg: float = 0.0  #: rotation of the heart inside the sector
    shift_px: tuple[float, float] = (0.0, 0.0)  #: (x, y) offset of the heart
    gain: float = 1.0  #: overall brightness
    attenuation: float = 0.010  #: per-pixel depth attenuation after partial gain compensation
    speckle_corr_px: float = 1.2  #: speckle grain size


def random_params(rng: np.random.Generator, *, ef: float | None = None) -> PhantomParams:
    """Plausible random anatomy; ``ef`` (fraction) fixed if given, else uniform over 0.25-0.75."""
    return PhantomParams(
        ef=float(rng.uniform(0.25, 0.75)) if ef is None else float(ef),
        edv_ml=float(rng.uniform(80.0, 170.0)),
        rv_ef=float(rng.uniform(0.40, 0.60)),
        la_scale=float(rng.uniform(0.85, 1.2)),
        tilt_deg=float(rng.uniform(-6.0, 6.0)),
        shift_px=(float(rng.uniform(-4, 4)), float(rng.uniform(-3, 3))),
        gain=float(rng.uniform(0.85, 1.15)),
        attenuation=float(rng.uniform(0.004, 0.014)),
        speckle_corr_px=float(rng.uniform(0.9, 1.5)),
    )


def volume_fraction(t_s: np.ndarray, beats: BeatTimes) -> np.ndarray:
    """Filling state φ(t) ∈ [0, 1] (1 = end-diastole, 0 = end-systole) at times ``t_s`` (seconds)."""
    r, te = extended_beats(beats)
    phi = np.ones_like(t_s, dtype=np.float64)
    k = np.clip(np.searchsorted(r, t_s, side="right") - 1, 0, len(r) - 2)  # beat containing t
    for i, (t, b) in enumerate(zip(t_s, k)):
        r0, r1, es = r[b], r[b + 1], min(te[b], r[b] + 0.8 * (r[b + 1] - r[b]))
        if t < es:  # systole: isovolumic contraction, then ejection
            ivc = min(0.05, 0.3 * (es - r0))
            u = np.clip((t - r0 - ivc) / max(es - r0 - ivc, 1e-3), 0, 1)
            phi[i] = 0.5 * (1 + np.cos(np.pi * u))
            continue
        dia = r1 - es
        ivr = min(0.06, 0.2 * dia)
        rapid = min(0.20, 0.35 * dia)
        kick = min(0.15, 0.25 * dia)
        d = t - es
        if d < ivr:
            phi[i] = 0.0
        elif d < ivr + rapid:
            phi[i] = 0.75 * 0.5 * (1 - np.cos(np.pi * (d - ivr) / rapid))
        elif t < r1 - kick:
            span = max(r1 - kick - (es + ivr + rapid), 1e-3)
            phi[i] = 0.75 + 0.10 * (d - ivr - rapid) / span
        else:
            phi[i] = 0.85 + 0.15 * 0.5 * (1 - np.cos(np.pi * (t - (r1 - kick)) / kick))
    return phi


@dataclass
class SimulatedClip:
    """video (F, 112, 112) float32 in [0, 1]; lv_volume_ml (F,); lv_area_px (F,) LV cavity area; ed/es_frames:
    frames nearest each R-peak / T-end inside the clip; r_s, t_end_s: those times relative to the clip start;
    tracings: EchoNet-style (frame, x1, y1, x2, y2) LV chords at one ED and one ES frame."""

    video: np.ndarray
    fps: float
    params: PhantomParams
    lv_volume_ml: np.ndarray
    lv_area_px: np.ndarray
    r_s: np.ndarray
    t_end_s: np.ndarray
    ed_frames: list[int] = field(default_factory=list)
    es_frames: list[int] = field(default_factory=list)
    tracings: list[tuple[int, float, float, float, float]] = field(default_factory=list)

    @property
    def edv_ml(self) -> float:
        return self.params.edv_ml

    @property
    def esv_ml(self) -> float:
        return self.params.edv_ml * (1 - self.params.ef)


def _speckle(rng: np.random.Generator, corr: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent complex speckle fields (real, imag parts smoothed), for a slowly decorrelating mix."""
    fields = rng.standard_normal((2, *shape))
    fields = ndi.gaussian_filter(fields, sigma=(0, corr, corr * 0.7))
    fields /= fields.std()
    return fields[0], fields[1]


def _ellipse(xr: np.ndarray, yr: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Normalised radius of each pixel in the ellipse of centre (cx, cy), semi-axes a (x) and b (y)."""
    return np.sqrt(((xr - cx) / a) ** 2 + ((yr - cy) / b) ** 2)


def render_frame(phi: float, p: PhantomParams, grid: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float, list]:
    """Echogenicity map (H, W) in [0, 1] of the heart at filling state ``phi``; returns the map, the LV cavity area
    in pixels and the LV chords (long axis first) as (x1, y1, x2, y2) in image pixels."""
    xs, ys = grid
    theta = np.deg2rad(p.tilt_deg)
    ox, oy = 56.0 + p.shift_px[0], 10.0 + p.shift_px[1]  # heart apex
    # Heart coordinates: rotate the image grid about the apex.
    xr = ox + (xs - ox) * np.cos(theta) + (ys - oy) * np.sin(theta)
    yr = oy - (xs - ox) * np.sin(theta) + (ys - oy) * np.cos(theta)
    size = (p.edv_ml / 120.0) ** (1 / 3)
    k = (1 - p.ef * (1 - phi)) ** (1 / 3)  # (V / EDV)^(1/3)
    lv_L, lv_s = 27.0 * size * k**0.6, 11.5 * size * k**1.2
    k_rv = (1 - p.rv_ef * (1 - phi)) ** (1 / 3)
    rv_L, rv_s = 23.0 * size * k_rv**0.6, 9.0 * size * k_rv**1.2
    wall = 5.0 * size + 2.5 * (1 - k)  # myocardium thickens as it contracts
    lv_cx, lv_cy = ox + 11.0 * size, oy + 4.0 + lv_L
    rv_cx, rv_cy = ox - 11.5 * size, oy + 10.0 + rv_L
    lv_base, rv_base = lv_cy + lv_L, rv_cy + rv_L
    fill_atria = 1.0 + 0.22 * (1 - phi)  # atria grow while the ventricles empty
    la_r = 13.0 * size * p.la_scale * fill_atria ** (1 / 2)
    ra_r = 11.0 * size * fill_atria ** (1 / 2)
    la_cx, la_cy = lv_cx + 1.0, lv_base + wall * 0.6 + la_r * 0.85
    ra_cx, ra_cy = rv_cx - 1.0, rv_base + wall * 0.6 + ra_r * 0.85

    tissue = np.full(xs.shape, 0.30)
    heart = np.minimum.reduce([
        _ellipse(xr, yr, lv_cx, lv_cy, lv_s + wall, lv_L + wall),
        _ellipse(xr, yr, rv_cx, rv_cy, rv_s + wall * 0.8, rv_L + wall * 0.8),
        _ellipse(xr, yr, la_cx, la_cy, la_r + wall * 0.6, la_r * 0.9 + wall * 0.6),
        _ellipse(xr, yr, ra_cx, ra_cy, ra_r + wall * 0.6, ra_r * 0.9 + wall * 0.6),
    ])
    tissue = np.where(heart < 1.0, 0.75, tissue)  # myocardium, septum and atrial walls
    lv = _ellipse(xr, yr, lv_cx, lv_cy, lv_s, lv_L) < 1.0
    cavities = lv | (_ellipse(xr, yr, rv_cx, rv_cy, rv_s, rv_L) < 1.0)
    cavities |= _ellipse(xr, yr, la_cx, la_cy, la_r, la_r * 0.9) < 1.0
    cavities |= _ellipse(xr, yr, ra_cx, ra_cy, ra_r, ra_r * 0.9) < 1.0
    tissue = np.where(cavities, 0.04, tissue)
    # Mitral and tricuspid leaflets: a bright line across the annulus while closed (systole and isovolumic phases).
    closed = phi < 0.02 or phi > 0.985
    if closed:
        for cx, cy, s in ((lv_cx, lv_base, lv_s), (rv_cx, rv_base, rv_s)):
            line = (np.abs(yr - (cy - 1.0)) < 1.0) & (np.abs(xr - cx) < s * 0.9)
            tissue = np.where(line, 0.8, tissue)
    area = float(lv.sum())
    # EchoNet-style tracing: the long axis, then 20 chords perpendicular to it (heart → image coordinates).
    def to_image(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - ox, y - oy
        return ox + dx * np.cos(theta) - dy * np.sin(theta), oy + dx * np.sin(theta) + dy * np.cos(theta)

    chords = [(*to_image(lv_cx, lv_cy - lv_L), *to_image(lv_cx, lv_cy + lv_L))]
    for j in range(1, 21):
        yy = lv_cy - lv_L + 2 * lv_L * j / 21
        half = lv_s * np.sqrt(max(0.0, 1 - ((yy - lv_cy) / lv_L) ** 2))
        chords.append((*to_image(lv_cx - half, yy), *to_image(lv_cx + half, yy)))
    return tissue, area, chords


def sector_mask(size: int = SIZE, *, half_angle_deg: float = 38.0) -> np.ndarray:
    """(size, size) bool: the imaging sector, apex at the top centre, radius size - 8 px."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xs - size / 2, ys - 4.0
    radius = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dx, dy))
    return (np.abs(angle) <= half_angle_deg) & (radius <= size - 8) & (dy >= 0)


def check_clip(ecg: np.ndarray, fs_hz: float, start_s: float, frames: int, fps: float) -> np.ndarray:
    """``ecg`` as a (C, T) float64 array; :class:`DataError` unless the clip fits in it."""
    ecg = np.atleast_2d(np.asarray(ecg, dtype=np.float64))
    duration = ecg.shape[-1] / fs_hz
    if frames < 1 or fps <= 0:
        raise DataError(f"frames must be >= 1 and fps > 0, got {frames} and {fps}")
    if start_s < 0 or start_s + frames / fps > duration + 1e-9:
        raise DataError(f"a clip of {frames} frames at {fps} fps from {start_s} s does not fit in a "
                        f"{duration:.2f} s ECG", hint="use fewer frames, a higher fps or a longer ECG")
    return ecg


def clip_events(beats: BeatTimes, start_s: float, frames: int, fps: float, volumes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[int], list[int], int, int]:
    """R-peak and T-end times relative to the clip start, the frames nearest those inside the clip (end-diastole,
    end-systole), and the first of each (or the largest / smallest LV volume when none falls inside)."""
    rel_r, rel_te = beats.r_s - start_s, beats.t_end_s - start_s
    inside = lambda times: [int(round(x * fps)) for x in times if -0.5 / fps <= x < frames / fps - 0.5 / fps]  # noqa: E731
    ed, es = inside(rel_r), inside(rel_te)
    return rel_r, rel_te, ed, es, ed[0] if ed else int(np.argmax(volumes)), es[0] if es else int(np.argmin(volumes))


def simulate(ecg: np.ndarray, fs_hz: float, *, start_s: float = 0.0, frames: int = 32, fps: float = 16.0,
             params: PhantomParams | None = None, seed: int = 0) -> SimulatedClip:
    """Render ``frames`` frames at ``fps`` of the phantom timed by ``ecg`` (C, T) mV from ``start_s`` seconds.

    The whole ECG is used to time the beats (so beats just outside the clip shape its first and last frames).
    Raises :class:`DataError` if the clip does not fit in the ECG or the ECG has fewer than two beats.
    """
    ecg = check_clip(ecg, fs_hz, start_s, frames, fps)
    rng = np.random.default_rng(seed)
    p = params or random_params(rng)
    beats = beat_times(ecg, fs_hz)
    t = start_s + np.arange(frames) / fps
    phi = volume_fraction(t, beats)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    mask = sector_mask()
    depth = np.hypot(xs - SIZE / 2, ys - 4.0)
    attenuation = np.exp(-p.attenuation * depth)
    s1, s2 = _speckle(rng, p.speckle_corr_px, (SIZE, SIZE))
    s3, s4 = _speckle(rng, p.speckle_corr_px, (SIZE, SIZE))
    video = np.empty((frames, SIZE, SIZE), dtype=np.float32)
    areas, volumes = np.empty(frames), p.edv_ml * (1 - p.ef * (1 - phi))
    drift = rng.uniform(0, 2 * np.pi)
    chords_at: dict[int, list] = {}
    for f in range(frames):
        tissue, areas[f], chords = render_frame(float(phi[f]), p, (xs, ys))
        chords_at[f] = chords
        tissue = ndi.gaussian_filter(tissue, 0.8)
        a = drift + 0.35 * f  # speckle decorrelates slowly (tissue motion, probe jitter)
        re, im = np.cos(a) * s1 + np.sin(a) * s3, np.cos(a) * s2 + np.sin(a) * s4
        speckle = np.hypot(re, im) / np.sqrt(2)  # Rayleigh, mean ≈ 0.89
        clutter = 0.03 * rng.random((SIZE, SIZE))
        img = p.gain * (tissue + clutter) * speckle * attenuation
        img = np.log1p(8.0 * img) / np.log1p(8.0 * 1.6)  # log compression to ~[0, 1]
        video[f] = np.where(mask, np.clip(img, 0, 1), 0.0)
    rel_r, rel_te, ed, es, ed_frame, es_frame = clip_events(beats, start_s, frames, fps, volumes)
    tracings = [(ed_frame, *c) for c in chords_at[ed_frame]] + [(es_frame, *c) for c in chords_at[es_frame]]
    return SimulatedClip(video=video, fps=float(fps), params=p, lv_volume_ml=volumes, lv_area_px=areas,
                         r_s=rel_r, t_end_s=rel_te, ed_frames=ed, es_frames=es, tracings=tracings)
