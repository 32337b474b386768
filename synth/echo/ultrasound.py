"""An apical four-chamber echo simulator with ultrasound physics: scatterers, a point-spread function, envelope
detection, attenuation and time-gain compensation, log compression and scan conversion, timed by a real ECG.

The image is formed the way a scanner forms it, in the beam domain (depth × angle) of a phased-array sector:

1. **Anatomy** (in mm, apex at the top): a left ventricle whose cavity is a bullet (an ellipse truncated at the
   mitral annulus, 60 % of its semi-axis past its centre, so the base is narrower than the mid-cavity); its volume
   is the single-plane area-length volume ``8 A² / (3 π L)`` clinicians measure, with ``A`` the cavity area and
   ``L`` its apex-to-annulus length; a thinner-walled right ventricle on the left of the screen, the septum between them, both
   atria below the valve planes, mitral and tricuspid leaflets hinged at the annuli, myocardium, a bright
   pericardium around the ventricles, and chest-wall clutter near the probe.
2. **Motion** (from the ECG through :func:`synth.echo.simulator.volume_fraction`: R-peak = end-diastole, T-end =
   end-systole): the LV volume runs between EDV and ESV = EDV (1 − EF); the long axis shortens by the global
   longitudinal strain (about −20 % in healthy hearts) and the short axis follows from the volume, so the EF of the
   rendered geometry is the one asked for. The wall thickens as it shortens (its area is kept), the annulus moves
   towards the fixed apex, the atria fill while the ventricles empty, and the leaflets open in diastole.
3. **Scatterers**: a complex Gaussian field fixed in material coordinates (so the speckle moves and deforms with
   the tissue instead of flickering), times each tissue's backscatter amplitude.
4. **Echo formation**: the scatterer field sampled on the beam grid, convolved with the point-spread function
   (Gaussian pulse envelope along depth, Gaussian beam across, widening with depth away from the focus), envelope
   detection (the magnitude of the complex baseband signal: fully developed speckle has a Rayleigh envelope,
   mean/std = sqrt(π / (4 − π)) ≈ 1.91), round-trip attenuation (0.5 dB/cm/MHz) with imperfect time-gain
   compensation, log compression to a 55 dB dynamic range, scan conversion into the 112 × 112 sector, and the
   depth markers along its edge.

Everything random comes from one ``numpy.random.Generator`` seeded by the caller: the same seed and ECG give the
same video. Returns the same :class:`synth.echo.simulator.SimulatedClip` as the geometric phantom, so the dataset
writer and readers serve both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
from scipy.signal import fftconvolve

from synth.echo.simulator import SIZE, PhantomParams, SimulatedClip, check_clip, clip_events, volume_fraction
from synth.echo.timing import beat_times

#: Fully developed speckle: the mean/std ratio of a Rayleigh envelope.
RAYLEIGH_MEAN_OVER_STD = float(np.sqrt(np.pi / (4 - np.pi)))
#: Sector of the scan: half-angle (deg) and depth (mm); the apex of the sector sits at the probe.
HALF_ANGLE_DEG = 40.0
DEPTH_MM = 160.0
#: Beam-domain sampling: depth samples (0.31 mm apart) and beams.
N_DEPTH, N_BEAMS = 512, 160


@dataclass(frozen=True)
class UltrasoundParams:
    """Per-clip anatomy and acquisition beyond :class:`PhantomParams` (EF, EDV, RV EF, atrial size, tilt, gain)."""

    phantom: PhantomParams
    strain: float = -0.20  #: LV global longitudinal strain at end-systole (healthy ≈ −0.20)
    frequency_mhz: float = 2.5  #: transmit frequency (sets attenuation and the pulse length)
    dynamic_range_db: float = 55.0
    tgc_error_db_per_cm: float = 0.0  #: residual depth slope the time-gain compensation leaves
    blood_db: float = -40.0  #: blood backscatter relative to myocardium
    apex_depth_mm: float = 16.0
    septum_offset_mm: float = -10.0  #: where the septum crosses the sector, left (−) of its centre line


def random_ultrasound_params(rng: np.random.Generator, *, ef: float | None = None,
                             phantom: PhantomParams | None = None) -> UltrasoundParams:
    """Plausible random acquisition and anatomy around published values (strain −16 to −24 % scaled down with low
    EF, 2-3.5 MHz, 50-60 dB dynamic range)."""
    from synth.echo.simulator import random_params

    p = phantom or random_params(rng, ef=ef)
    healthy = float(np.clip(p.ef / 0.60, 0.4, 1.2))  # weaker hearts shorten less
    return UltrasoundParams(
        phantom=p, strain=float(-rng.uniform(0.16, 0.24) * healthy),
        frequency_mhz=float(rng.uniform(2.0, 3.5)), dynamic_range_db=float(rng.uniform(50.0, 60.0)),
        tgc_error_db_per_cm=float(rng.uniform(-0.4, 0.4)), blood_db=float(rng.uniform(-45.0, -36.0)),
        apex_depth_mm=float(rng.uniform(12.0, 22.0)), septum_offset_mm=float(rng.uniform(-16.0, -6.0)),
    )


# -- geometry -------------------------------------------------------------------------------------------------------
#: Where the ventricles are cut off at their valve plane: this fraction of the long semi-axis past the centre.
TRUNCATION = 0.6
#: Area of a bullet of semi-axes (s, a) divided by s·a: half an ellipse plus the band from its centre to the cut.
BULLET_AREA = np.pi / 2 + TRUNCATION * np.sqrt(1 - TRUNCATION**2) + np.arcsin(TRUNCATION)


@dataclass(frozen=True)
class Geometry:
    """The heart at one instant, in heart coordinates (mm): u across (positive = LV side), v along the long axis
    from the apex (positive = towards the base)."""

    lv_s: float  #: LV cavity half-width (the bullet's short semi-axis)
    lv_L: float  #: LV cavity length, apex to mitral annulus
    wall: float  #: LV wall thickness
    rv_s: float
    rv_L: float
    la_r: float
    ra_r: float
    mitral_open: float  #: 0 closed .. 1 fully open
    tricuspid_open: float

    @property
    def lv_area_mm2(self) -> float:
        return float(BULLET_AREA * self.lv_s * self.lv_L / (1 + TRUNCATION))

    @property
    def lv_volume_ml(self) -> float:
        """Single-plane area-length volume of the cavity, 8 A² / (3 π L), in mL."""
        return float(8 * self.lv_area_mm2**2 / (3 * np.pi * self.lv_L) / 1000)


def lv_axes(volume_ml: float, edv_ml: float, ef: float, strain: float) -> tuple[float, float]:
    """(half-width, length) of the LV cavity (mm) holding ``volume_ml``: the long axis shortens linearly with the
    ejected volume, reaching ``strain`` at end-systole; the half-width follows from the area-length volume."""
    l_ed = 80.0 * (edv_ml / 120.0) ** (1 / 3)  # about 8 cm of cavity for 120 mL, as in adult apical views
    ejected = (edv_ml - volume_ml) / max(edv_ml * ef, 1e-9)  # 0 at ED, 1 at ES
    length = l_ed * (1 + strain * ejected)
    area = np.sqrt(3 * np.pi * length * volume_ml * 1000 / 8)  # mm², from V = 8 A² / (3 π L)
    a = length / (1 + TRUNCATION)
    return float(area / (a * BULLET_AREA)), float(length)


def geometry(phi: float, opening: tuple[float, float], u: UltrasoundParams) -> Geometry:
    p = u.phantom
    volume = p.edv_ml * (1 - p.ef * (1 - phi))
    s, length = lv_axes(volume, p.edv_ml, p.ef, u.strain)
    s_ed, l_ed = lv_axes(p.edv_ml, p.edv_ml, p.ef, u.strain)
    wall_ed = 9.0 * (p.edv_ml / 120.0) ** (1 / 3)
    # Wall area of the half-ellipse shell kept constant: (s + w)(L + w) − s L = const.
    shell = (s_ed + wall_ed) * (l_ed + wall_ed) - s_ed * l_ed
    b = s + length
    wall = float((-b + np.sqrt(b * b + 4 * shell)) / 2)
    rv_phi = 1 - p.rv_ef * (1 - phi)
    rv_s, rv_L = 0.62 * s_ed * rv_phi**0.8, 0.85 * l_ed * rv_phi**0.15
    atria = 1.0 + 0.25 * (1 - phi)  # the atria fill while the ventricles empty
    return Geometry(lv_s=s, lv_L=length, wall=wall, rv_s=rv_s, rv_L=rv_L,
                    la_r=19.0 * p.la_scale * (p.edv_ml / 120) ** (1 / 3) * atria ** 0.5,
                    ra_r=16.0 * (p.edv_ml / 120) ** (1 / 3) * atria ** 0.5,
                    mitral_open=opening[0], tricuspid_open=opening[1])


def valve_opening(t_s: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(F, 2) mitral and tricuspid opening in [0, 1]: shut while the volume falls or stays at its minimum
    (systole, isovolumic phases), open while it rises fast (early filling, atrial kick), half-closed in between."""
    rate = np.gradient(phi, t_s) if len(phi) > 1 else np.zeros_like(phi)
    opening = np.clip(rate / 2.0, 0.0, 1.0) ** 0.5  # φ rises ~4/s in rapid filling → fully open
    opening = np.where(phi < 0.02, 0.0, opening)
    return np.stack([opening, 0.9 * opening], axis=1)


# -- tissue map ---------------------------------------------------------------------------------------------------
def _half_ellipse(uu: np.ndarray, vv: np.ndarray, cu: float, half: float, length: float, base: float) -> np.ndarray:
    """Normalised radius of points in the bullet with its tip at v = base − length and its cut (the valve plane)
    at v = base; points beyond the base get inf."""
    a = max(length, 1e-3) / (1 + TRUNCATION)
    centre = base - TRUNCATION * a
    r = np.sqrt(((uu - cu) / max(half, 1e-3)) ** 2 + ((vv - centre) / a) ** 2)
    return np.where(vv <= base, r, np.inf)


def tissue_amplitude(uu: np.ndarray, vv: np.ndarray, g: Geometry, u: UltrasoundParams,
                     texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backscatter amplitude of each point (heart coordinates, mm) and the LV cavity mask. ``texture``: a smooth
    random field (same shape) that varies myocardial echogenicity (fibre orientation, perfusion)."""
    blood = 10 ** (u.blood_db / 20)
    lv_base = g.lv_L  # apex at v = 0
    septum = 0.55 * g.wall + 2.0
    lv_cu = g.lv_s + septum  # the septum sits at u = 0
    rv_cu = -(g.rv_s + septum)
    rv_base = lv_base - 4.0
    amp = np.full(uu.shape, 0.10)  # tissue around the heart (lung, mediastinum): weak, uneven echoes
    amp *= 0.3 + 1.4 * np.clip(texture, 0, 1) ** 2
    lv_out = _half_ellipse(uu, vv, lv_cu, g.lv_s + g.wall, g.lv_L + g.wall * 0.8, lv_base)
    rv_out = _half_ellipse(uu, vv, rv_cu, g.rv_s + 0.45 * g.wall, g.rv_L + 0.45 * g.wall, rv_base)
    outer = np.minimum(lv_out, rv_out)
    pericardium = (outer >= 1.0) & (outer < 1.0 + 3.5 / max(g.lv_L, 1))
    amp = np.where(pericardium, 2.2 * (0.8 + 0.4 * texture), amp)
    myocardium = outer < 1.0
    amp = np.where(myocardium, 1.0 * (0.55 + 0.9 * texture), amp)
    # Atria below the valve planes: cavities with thin walls.
    la_cv = lv_base + 0.9 * g.la_r
    ra_cv = rv_base + 0.9 * g.ra_r
    la = np.hypot((uu - lv_cu) / g.la_r, (vv - la_cv) / (0.95 * g.la_r))
    ra = np.hypot((uu - rv_cu) / g.ra_r, (vv - ra_cv) / (0.95 * g.ra_r))
    atrial_wall = ((la < 1.07) | (ra < 1.07)) & (vv > min(lv_base, rv_base) - 1)
    amp = np.where(atrial_wall, 0.5 * (0.6 + 0.8 * texture), amp)
    lv = _half_ellipse(uu, vv, lv_cu, g.lv_s, g.lv_L, lv_base) < 1.0
    rv = _half_ellipse(uu, vv, rv_cu, g.rv_s, g.rv_L, rv_base) < 1.0
    cavity = lv | rv | (la < 1.0) | (ra < 1.0)
    amp = np.where(cavity, blood * (0.7 + 0.6 * texture), amp)
    # Leaflets hinged at each annulus: shut they meet across the valve plane, bowing slightly into the atrium;
    # open they swing into the ventricle.
    for cu, half, base, opening in ((lv_cu, g.lv_s, lv_base, g.mitral_open), (rv_cu, g.rv_s, rv_base,
                                                                              g.tricuspid_open)):
        length = 0.55 * half
        for side in (-1.0, 1.0):
            hinge_u = cu + side * half
            angle = np.deg2rad(10 + 75 * opening)  # from the valve plane towards the apex
            tip_u = hinge_u - side * length * np.cos(angle)
            tip_v = base - length * np.sin(angle) + (1 - opening) * 2.0
            amp = np.where(_segment(uu, vv, hinge_u, base, tip_u, tip_v) < 1.0, 2.0, amp)
    return amp, lv


def _segment(uu, vv, u0, v0, u1, v1) -> np.ndarray:
    du, dv = u1 - u0, v1 - v0
    t = np.clip(((uu - u0) * du + (vv - v0) * dv) / max(du * du + dv * dv, 1e-9), 0, 1)
    return np.hypot(uu - (u0 + t * du), vv - (v0 + t * dv))


# -- echo formation ------------------------------------------------------------------------------------------------
def beam_grid() -> tuple[np.ndarray, np.ndarray]:
    """Depth (mm) and angle (rad) of every beam-domain sample, (N_DEPTH, N_BEAMS) each."""
    depth = np.linspace(0.0, DEPTH_MM, N_DEPTH)
    angle = np.deg2rad(np.linspace(-HALF_ANGLE_DEG, HALF_ANGLE_DEG, N_BEAMS))
    return np.meshgrid(depth, angle, indexing="ij")


def psf_kernel(frequency_mhz: float) -> np.ndarray:
    """(depth, angle) point-spread function on the beam grid: a Gaussian pulse envelope along depth (about 1.5
    wavelengths long, axial σ = 0.45 λ) times a Gaussian beam across (σ of 0.6 beam spacings)."""
    wavelength = 1.54 / frequency_mhz  # mm, c = 1540 m/s
    dz = DEPTH_MM / (N_DEPTH - 1)
    sz = 0.45 * wavelength / dz  # in depth samples
    z = np.arange(-int(4 * sz) - 1, int(4 * sz) + 2)
    axial = np.exp(-0.5 * (z / sz) ** 2)
    x = np.arange(-3, 4)
    lateral = np.exp(-0.5 * (x / 1.1) ** 2)
    return np.outer(axial, lateral)


def form_image(amplitude: np.ndarray, scatterers: np.ndarray, depth: np.ndarray, u: UltrasoundParams
               ) -> np.ndarray:
    """Beam-domain backscatter ``amplitude`` × complex ``scatterers`` → log-compressed B-mode in [0, 1]."""
    rf = fftconvolve(amplitude * scatterers, psf_kernel(u.frequency_mhz), mode="same")  # complex baseband
    envelope = np.abs(rf)
    # Round trip attenuation (dB) and the time-gain compensation that undoes most of it.
    loss_db = 2 * 0.5 * u.frequency_mhz * depth / 10.0
    tgc_db = loss_db - u.tgc_error_db_per_cm * depth / 10.0
    envelope = envelope * 10 ** ((tgc_db - loss_db) / 20)
    ref = np.percentile(envelope, 99.5)
    db = 20 * np.log10(np.maximum(envelope, 1e-12) / max(ref, 1e-12))
    return np.clip(1 + db / u.dynamic_range_db, 0.0, 1.0) * u.phantom.gain


def scan_convert(image: np.ndarray, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Beam domain (depth × angle) → the (size, size) sector picture (apex at the top centre) and its mask."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    mm_per_px = DEPTH_MM / (size - 6)
    x = (xs - (size - 1) / 2) * mm_per_px
    z = (ys - 2.0) * mm_per_px
    r = np.hypot(x, z)
    a = np.degrees(np.arctan2(x, z))
    inside = (r <= DEPTH_MM) & (np.abs(a) <= HALF_ANGLE_DEG) & (z >= 0)
    ri = r / DEPTH_MM * (N_DEPTH - 1)
    ai = (a + HALF_ANGLE_DEG) / (2 * HALF_ANGLE_DEG) * (N_BEAMS - 1)
    picture = ndi.map_coordinates(image, [ri, ai], order=1, mode="constant", cval=0.0)
    return np.where(inside, np.clip(picture, 0, 1), 0.0), inside


def depth_markers(size: int = SIZE) -> np.ndarray:
    """(size, size) bool: small marks along the right sector edge every 20 mm of depth, as scanners draw them."""
    marks = np.zeros((size, size), dtype=bool)
    mm_per_px = DEPTH_MM / (size - 6)
    angle = np.deg2rad(HALF_ANGLE_DEG + 2.5)
    for d in np.arange(20.0, DEPTH_MM + 1, 20.0):
        px = (size - 1) / 2 + d * np.sin(angle) / mm_per_px
        py = 2.0 + d * np.cos(angle) / mm_per_px
        i, j = int(round(py)), int(round(px))
        if 0 <= i < size and 0 <= j < size - 1:
            marks[i, j : j + 2] = True
    return marks


# -- the clip -------------------------------------------------------------------------------------------------------
def simulate_ultrasound(ecg: np.ndarray, fs_hz: float, *, start_s: float = 0.0, frames: int = 32,
                        fps: float = 16.0, params: UltrasoundParams | None = None, ef: float | None = None,
                        seed: int = 0) -> SimulatedClip:
    """Render ``frames`` frames at ``fps`` of the simulated apical four-chamber view timed by ``ecg`` (C, T) mV
    from ``start_s``; see the module doc. ``ef`` (fraction) fixes the EF of random parameters."""
    ecg = check_clip(ecg, fs_hz, start_s, frames, fps)
    rng = np.random.default_rng(seed)
    u = params or random_ultrasound_params(rng, ef=ef)
    p = u.phantom
    beats = beat_times(ecg, fs_hz)
    t = start_s + np.arange(frames) / fps
    fine = start_s + np.arange(frames * 4) / (4 * fps)  # opening from the volume rate, sampled finer than frames
    phi = volume_fraction(t, beats)
    opening = valve_opening(fine, volume_fraction(fine, beats))[::4]
    depth, angle = beam_grid()
    x_mm, z_mm = depth * np.sin(angle), depth * np.cos(angle)
    tilt = np.deg2rad(p.tilt_deg)
    # Heart coordinates (u across, v along the long axis from the apex), in mm.
    shift_u, shift_v = p.shift_px[0] * 1.4 + u.septum_offset_mm, p.shift_px[1] * 1.4
    xa, za = x_mm - shift_u, z_mm - u.apex_depth_mm - shift_v
    uu = xa * np.cos(tilt) - za * np.sin(tilt)
    vv = xa * np.sin(tilt) + za * np.cos(tilt)
    # Material-frame scatterers (0.25 mm grid over the field of view) and a smooth texture field.
    grid_mm = 0.25
    span_u, span_v = 2 * DEPTH_MM, DEPTH_MM + 40
    nu, nv = int(span_u / grid_mm), int(span_v / grid_mm)
    scat = (rng.standard_normal((nv, nu)) + 1j * rng.standard_normal((nv, nu))) / np.sqrt(2)
    texture_field = ndi.gaussian_filter(rng.standard_normal((nv // 8, nu // 8)), 2.0)
    texture_field = 0.5 + 0.5 * texture_field / max(texture_field.std(), 1e-9) * 0.35
    g_ed = geometry(1.0, (0.0, 0.0), u)
    markers = depth_markers()
    video = np.empty((frames, SIZE, SIZE), dtype=np.float32)
    volumes, areas = np.empty(frames), np.empty(frames)
    tracings: dict[int, list] = {}
    for f in range(frames):
        g = geometry(float(phi[f]), tuple(opening[f]), u)
        # Material coordinates: inside the heart, points move with the LV (longitudinal scaling from the apex,
        # transverse from the septum), fading to rest a few centimetres outside it.
        sl, ss = g.lv_L / g_ed.lv_L, (g.lv_s + g.wall) / (g_ed.lv_s + g_ed.wall)
        near = np.exp(-np.maximum(np.hypot(uu / (g.lv_s + 25), (vv - g.lv_L / 2) / (g.lv_L + 25)) - 1, 0) * 3)
        mu = uu / (1 + (ss - 1) * near)
        mv = vv / (1 + (sl - 1) * near)
        iu, iv = (mu + span_u / 2) / grid_mm, (mv + 20) / grid_mm
        s = ndi.map_coordinates(scat.real, [iv, iu], order=1, mode="wrap") + \
            1j * ndi.map_coordinates(scat.imag, [iv, iu], order=1, mode="wrap")
        tex = ndi.map_coordinates(texture_field, [iv / 8, iu / 8], order=1, mode="nearest")
        amp, lv = tissue_amplitude(uu, vv, g, u, tex)
        near_field = np.exp(-depth / 8.0) * 1.5 * (0.5 + tex)  # chest-wall reverberation near the probe
        image = form_image(amp + near_field, s, depth, u)
        picture, inside = scan_convert(image)
        video[f] = np.where(markers, 0.9, picture).astype(np.float32)
        volumes[f] = g.lv_volume_ml
        areas[f] = float(scan_convert(lv.astype(np.float64))[0].__gt__(0.5).sum())
        tracings[f] = _tracing(g, u, shift_u, shift_v, tilt)
    rel_r, rel_te, ed, es, ed_frame, es_frame = clip_events(beats, start_s, frames, fps, volumes)
    chords = [(ed_frame, *c) for c in tracings[ed_frame]] + [(es_frame, *c) for c in tracings[es_frame]]
    return SimulatedClip(video=video, fps=float(fps), params=p, lv_volume_ml=volumes, lv_area_px=areas,
                         r_s=rel_r, t_end_s=rel_te, ed_frames=ed, es_frames=es, tracings=chords)


def _tracing(g: Geometry, u: UltrasoundParams, shift_u: float, shift_v: float, tilt: float) -> list:
    """EchoNet-style LV tracing in image pixels: the long axis, then 20 chords across it."""
    mm_per_px = DEPTH_MM / (SIZE - 6)
    septum = 0.55 * g.wall + 2.0
    cu = g.lv_s + septum

    def to_px(uh: float, vh: float) -> tuple[float, float]:
        xa = uh * np.cos(tilt) + vh * np.sin(tilt)
        za = -uh * np.sin(tilt) + vh * np.cos(tilt)
        x, z = xa + shift_u, za + u.apex_depth_mm + shift_v
        return (SIZE - 1) / 2 + x / mm_per_px, 2.0 + z / mm_per_px

    out = [(*to_px(cu, 0.0), *to_px(cu, g.lv_L))]
    for j in range(1, 21):
        v = g.lv_L * j / 21
        half = g.lv_s * np.sqrt(max(0.0, 1 - ((v - g.lv_L) / g.lv_L) ** 2))
        out.append((*to_px(cu - half, v), *to_px(cu + half, v)))
    return out
