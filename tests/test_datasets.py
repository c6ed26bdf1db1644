"""`mcuforge datasets keywords`: the spoken-keyword data set made offline.

* a small build is deterministic: the same seed twice gives the same arrays
  (SHA-256 over every array), another seed different ones;
* the held-out speakers' voice variants never occur in training;
* the NumPy MFCC front end: the Hann window and the DCT-II are SciPy's
  (periodic Hann; DCT-II unnormalized / sqrt(2 x 40), tf.signal's scaling), a
  pure tone's energy lands in the mel band around its frequency;
* bad options exit 2 and write nothing.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from mcuforge.tools import cli
from mcuforge.datasets import keywords

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (apt-get install espeak-ng)")


@needs_espeak
def test_small_build_is_deterministic(tmp_path, capsys):
    recipe = keywords.Recipe(seed=3, speakers=20, copies=1)
    a = keywords.build(recipe)
    b = keywords.build(recipe)
    assert keywords.digest(a) == keywords.digest(b)
    assert keywords.digest(keywords.build(keywords.Recipe(seed=4, speakers=20, copies=1))) != keywords.digest(a)
    # the command line writes the same arrays
    out = tmp_path / "kw.npz"
    assert cli.main(["-q", "datasets", "keywords", "-o", str(out), "--seed", "3", "--speakers", "20",
                     "--copies", "1"]) == 0
    with np.load(out, allow_pickle=False) as f:
        assert keywords.digest({k: f[k] for k in f.files}) == keywords.digest(a)
    assert keywords.digest(a)[:16] in capsys.readouterr().out
    assert a["x"].shape[1:] == (1, 49, 10) and a["x"].dtype == np.float32
    assert np.isfinite(a["x"]).all() and np.isfinite(a["x_val"]).all()
    # every class present in both splits, equally often
    for y in (a["y"], a["y_val"]):
        counts = np.bincount(y, minlength=len(keywords.LABELS))
        assert counts.min() == counts.max() > 0
    assert list(a["labels"]) == list(keywords.LABELS)


def test_held_out_speakers_are_unseen_voices():
    train, val = keywords.speakers_for(keywords.Recipe(seed=0, speakers=256))
    assert len(train) + len(val) == 256 and len(val) >= 20
    assert not {s["variant"] for s in train} & {s["variant"] for s in val}
    # many accents on both sides
    assert len({s["accent"] for s in val}) >= 5 and len({s["accent"] for s in train}) == len(keywords.ACCENTS)


def test_mfcc_front_end_matches_scipy_pieces():
    scipy_signal = pytest.importorskip("scipy.signal")
    from scipy.fft import dct

    assert np.allclose(keywords._HANN, scipy_signal.get_window("hann", keywords.WINDOW), atol=1e-7)
    x = np.random.default_rng(0).standard_normal((5, keywords.MEL_BANDS))
    assert np.allclose(x @ keywords.dct_matrix(), dct(x, type=2)[:, :keywords.MFCC] / np.sqrt(2 * keywords.MEL_BANDS),
                       atol=1e-5)
    # a 1 kHz tone: the strongest log-mel band is the one whose triangle peaks nearest 1 kHz
    t = np.arange(keywords.CLIP) / keywords.SAMPLE_RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    mel = keywords.mel_matrix()
    freqs = np.linspace(0, keywords.SAMPLE_RATE / 2, keywords.FFT // 2 + 1)
    peak_band = int(np.argmin(np.abs(freqs[mel.argmax(0)] - 1000.0)))
    frames = tone[:keywords.WINDOW] * keywords._HANN
    energy = np.abs(np.fft.rfft(frames, keywords.FFT)) @ mel
    assert int(energy.argmax()) == peak_band
    feats = keywords.mfcc(tone[None])
    assert feats.shape == (1, 49, 10)
    # the front end is the composition: log-mel of each frame times the DCT
    assert np.allclose(feats[0, 0], np.log(energy + 1e-6) @ keywords.dct_matrix(), rtol=1e-4, atol=2e-3)  # float32 spectra


@pytest.mark.parametrize("argv, words", [
    (["--speakers", "0"], "--speakers must be at least 1"),
    (["--copies", "0"], "--copies must be at least 1"),
])
def test_bad_options_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "kw.npz"
    assert cli.main(["datasets", "keywords", "-o", str(out)] + argv) == 2
    assert words in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_output_must_be_npz_in_an_existing_directory(tmp_path, capsys):
    assert cli.main(["datasets", "keywords", "-o", str(tmp_path / "kw.csv")]) == 2
    assert "must be a .npz file" in capsys.readouterr().err
    assert cli.main(["datasets", "keywords", "-o", str(tmp_path / "no" / "kw.npz")]) == 2
    assert "no such directory" in capsys.readouterr().err
