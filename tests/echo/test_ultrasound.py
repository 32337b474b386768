"""The ultrasound simulator against what is known of real echocardiograms: Rayleigh speckle, the EF of its
geometry, longitudinal strain, blood-to-myocardium contrast, and timing by the ECG."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from synth.echo.simulator import PhantomParams
from synth.echo.ultrasound import (
    RAYLEIGH_MEAN_OVER_STD,
    UltrasoundParams,
    beam_grid,
    form_image,
    geometry,
    psf_kernel,
    simulate_ultrasound,
    tissue_amplitude,
)


def test_fully_developed_speckle_has_a_rayleigh_envelope():
    """A homogeneous medium of many scatterers per resolution cell: the envelope's mean/std is 1.91."""
    rng = np.random.default_rng(0)
    field = (rng.standard_normal((600, 400)) + 1j * rng.standard_normal((600, 400))) / np.sqrt(2)
    envelope = np.abs(fftconvolve(field, psf_kernel(2.5), mode="valid"))
    assert envelope.mean() / envelope.std() == pytest.approx(RAYLEIGH_MEAN_OVER_STD, rel=0.03)
    assert RAYLEIGH_MEAN_OVER_STD == pytest.approx(1.913, abs=0.001)


@pytest.mark.parametrize(("ef", "strain"), [(0.60, -0.20), (0.35, -0.12), (0.70, -0.22)])
def test_the_geometry_ejects_the_asked_fraction_with_the_asked_strain(ef, strain):
    u = UltrasoundParams(phantom=PhantomParams(ef=ef, edv_ml=130.0), strain=strain)
    ed, es = geometry(1.0, (0.0, 0.0), u), geometry(0.0, (0.0, 0.0), u)
    assert ed.lv_volume_ml == pytest.approx(130.0, rel=1e-6)
    assert (ed.lv_volume_ml - es.lv_volume_ml) / ed.lv_volume_ml == pytest.approx(ef, abs=1e-6)
    assert es.lv_L / ed.lv_L - 1 == pytest.approx(strain, abs=1e-6)  # global longitudinal strain
    wall_area = lambda g: (g.lv_s + g.wall) * (g.lv_L + g.wall) - g.lv_s * g.lv_L  # noqa: E731
    assert es.wall > ed.wall and wall_area(es) == pytest.approx(wall_area(ed), rel=1e-6)  # thickens, mass kept
    assert 35.0 < 2 * ed.lv_s < 60.0 and 70.0 < ed.lv_L < 95.0  # adult LV: ~5 cm across, ~8 cm long


def test_blood_is_darker_than_myocardium_by_the_set_contrast():
    u = UltrasoundParams(phantom=PhantomParams(ef=0.6), blood_db=-40.0)
    depth, angle = beam_grid()
    uu, vv = depth * np.sin(angle) + 10.0, depth * np.cos(angle) - 16.0
    amp, lv = tissue_amplitude(uu, vv, geometry(1.0, (0.0, 0.0), u), u, np.full(uu.shape, 0.5))
    rng = np.random.default_rng(1)
    scat = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) / np.sqrt(2)
    envelope = np.abs(fftconvolve(amp * scat, psf_kernel(2.5), mode="same"))
    myocardium = (amp > 0.5) & (amp < 1.2)
    contrast_db = 20 * np.log10(np.median(envelope[lv]) / np.median(envelope[myocardium]))
    assert -46.0 < contrast_db < -34.0
    image = form_image(amp, scat, depth, u)
    assert np.median(image[lv]) < 0.3 < np.median(image[myocardium])  # dark cavity, bright wall after log


def test_a_clip_is_timed_by_its_ecg_and_keeps_its_speckle(make_synthetic_record):
    rec = make_synthetic_record(duration_s=6.0, heart_rate_bpm=75.0)
    clip = simulate_ultrasound(rec.signal, rec.fs_hz, frames=32, ef=0.5, seed=3)
    again = simulate_ultrasound(rec.signal, rec.fs_hz, frames=32, ef=0.5, seed=3)
    assert clip.video.shape == (32, 112, 112) and clip.video.dtype == np.float32
    np.testing.assert_array_equal(clip.video, again.video)  # deterministic under the seed
    volumes = clip.lv_volume_ml
    assert volumes.max() <= clip.edv_ml + 1e-6 and volumes.min() >= clip.esv_ml - 1e-6
    for f in clip.ed_frames:  # R-peaks are end-diastole: the largest LV of their beat
        assert volumes[f] >= np.percentile(volumes, 75)
    assert clip.lv_area_px[clip.ed_frames[0]] > clip.lv_area_px[clip.es_frames[0]]
    # Speckle moves with the tissue: neighbouring frames correlate far more than frames of another seed.
    other = simulate_ultrasound(rec.signal, rec.fs_hz, frames=2, ef=0.5, seed=4).video
    corr = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])  # noqa: E731
    assert corr(clip.video[0], clip.video[1]) > corr(clip.video[0], other[0]) + 0.1
