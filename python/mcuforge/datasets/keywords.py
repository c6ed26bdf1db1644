"""A spoken-keyword data set made offline with espeak-ng, in MLPerf Tiny KWS's
features.

Ten keywords (Speech Commands' yes/no/up/down/left/right/on/off/stop/go),
"unknown" (other words) and "silence" (background noise only), each a 1 s
clip at 16 kHz turned into 49 x 10 MFCC (30 ms Hann window, 20 ms hop,
512-point FFT magnitude, 40 mel bands 20 Hz - 4 kHz, log(mel + 1e-6), DCT-II
scaled as tf.signal.mfccs_from_log_mel_spectrograms, first 10 coefficients),
the features MLPerf Tiny's KWS benchmark computes with tf.signal.

Speakers: a speaker is one espeak-ng accent (en-us, en-gb, Scottish, RP,
Caribbean, ...) with one voice variant (m1..m8, f1..f5, klatt, named
variants), a base pitch and a base speaking rate drawn once per speaker.
Every utterance jitters that pitch and rate a little. The held-out split is
the speakers of voice variants that never occur in training (in every
accent), so a held-out voice has never been heard.

Each synthesized word becomes `copies` clips: the speech (silence trimmed)
placed about the centre with a random shift of up to +-100 ms, a random peak
amplitude, and with probability 0.8 background noise at an SNR of 0-20 dB
(white, pink, brown, mains hum with harmonics, or babble made of other
utterances of the same split). Silence clips are noise alone at a random
level.

Everything is drawn from one seeded generator before any synthesis runs, and
espeak-ng is a deterministic synthesizer, so the same seed and options give
the same arrays (with the same espeak-ng version). Nothing here is committed
as data: the file is made on demand, in about a minute at the defaults.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import McuforgeError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LABELS = KEYWORDS + ("unknown", "silence")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero", "one",
                 "two", "three", "four", "five", "six", "seven", "eight", "nine", "backward", "forward", "follow",
                 "learn", "visual", "yellow", "note", "upper", "dawn", "write", "often", "star", "goal")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "klatt4", "klatt6", "adam", "Alex", "Alicia", "Andy", "Annie", "aunty", "belinda",
            "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene", "gustave", "Henrique", "Hugo", "iven",
            "Jacky", "john", "Lee", "linda", "Marco", "max", "Michael", "michel", "miguel", "Mike", "Nguyen",
            "pablo", "paul", "pedro", "quincy", "rob", "robert", "steph", "zac", "anika", "grandpa", "grandma",
            "norbert", "sandro", "shelby", "travis", "victor", "croak")
NOISES = ("white", "pink", "brown", "hum", "babble")

SAMPLE_RATE = 16000
CLIP = SAMPLE_RATE  # 1 s
# MLPerf Tiny KWS front end
WINDOW = 480  # 30 ms
HOP = 320  # 20 ms
FFT = 512
MEL_BANDS = 40
MFCC = 10
MEL_LOW_HZ, MEL_HIGH_HZ = 20.0, 4000.0
FRAMES = 1 + (CLIP - WINDOW) // HOP  # 49


# ---- features (NumPy) ---------------------------------------------------------------------

def mel_matrix(bands: int = MEL_BANDS, bins: int = FFT // 2 + 1, rate: int = SAMPLE_RATE,
               low: float = MEL_LOW_HZ, high: float = MEL_HIGH_HZ) -> np.ndarray:
    """(bins, bands) triangular filters on the HTK mel scale, the rule of
    tf.signal.linear_to_mel_weight_matrix (the DC bin gets no weight)."""
    def mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    freqs = np.linspace(0.0, rate / 2, bins)[1:]
    spec = mel(freqs)[:, None]
    edges = np.linspace(mel(low), mel(high), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((spec - lower) / (centre - lower), (upper - spec) / (upper - centre)))
    return np.concatenate([np.zeros((1, bands)), weights]).astype(np.float32)


def dct_matrix(bands: int = MEL_BANDS, coefficients: int = MFCC) -> np.ndarray:
    """(bands, coefficients) DCT-II, scaled as tf.signal.mfccs_from_log_mel_spectrograms
    (the unnormalized DCT-II, 2 sum x cos, times 1/sqrt(2 bands))."""
    n = np.arange(bands)[:, None]
    k = np.arange(coefficients)[None, :]
    return (2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * bands)) / np.sqrt(2.0 * bands)).astype(np.float32)


_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)  # periodic, as tf.signal


def mfcc(audio: np.ndarray) -> np.ndarray:
    """(N, 16000) float audio in [-1, 1] -> (N, 49, 10) float32 MFCC."""
    audio = np.asarray(audio, np.float32).reshape(-1, CLIP)
    index = np.arange(FRAMES)[:, None] * HOP + np.arange(WINDOW)[None, :]
    mel, dct = mel_matrix(), dct_matrix()
    out = np.empty((len(audio), FRAMES, MFCC), np.float32)
    for i in range(0, len(audio), 256):
        frames = audio[i:i + 256][:, index] * _HANN
        magnitude = np.abs(np.fft.rfft(frames, FFT, axis=-1)).astype(np.float32)
        out[i:i + 256] = np.log(magnitude @ mel + 1e-6) @ dct
    return out


# ---- synthesis -------------------------------------------------------------------------------

def espeak_path() -> str:
    path = shutil.which("espeak-ng")
    if not path:
        raise McuforgeError("datasets keywords: espeak-ng is not installed; install the Debian package "
                            "(sudo apt-get install espeak-ng, or scripts/bootstrap.sh test)")
    return path


def resample(x: np.ndarray, rate: int, to: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by the FFT (speech well below the new Nyquist)."""
    n = int(round(len(x) * to / rate))
    spectrum = np.fft.rfft(x)
    keep = n // 2 + 1
    spectrum = spectrum[:keep] if len(spectrum) >= keep else np.pad(spectrum, (0, keep - len(spectrum)))
    return (np.fft.irfft(spectrum, n) * (n / len(x))).astype(np.float32)


def synthesize(word: str, accent: str, variant: str, rate: int, pitch: int, espeak: str | None = None) -> np.ndarray:
    """One word spoken by espeak-ng, 16 kHz float32, leading and trailing
    silence trimmed."""
    cmd = [espeak or espeak_path(), "-v", f"{accent}+{variant}", "-s", str(rate), "-p", str(pitch), "--stdout", word]
    wav = subprocess.run(cmd, capture_output=True, check=True, env={"PATH": os.environ.get("PATH", "")}).stdout
    fmt = wav.find(b"fmt ")
    source_rate = int.from_bytes(wav[fmt + 12:fmt + 16], "little")
    data = wav.find(b"data")
    pcm = np.frombuffer(wav[data + 8:data + 8 + (len(wav) - data - 8) // 2 * 2], "<i2").astype(np.float32) / 32768
    if not len(pcm):
        raise McuforgeError(f"datasets keywords: espeak-ng produced no audio for '{word}' with voice "
                            f"{accent}+{variant}")
    x = resample(pcm, source_rate)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    return x[loud[0]:loud[-1] + 1] if len(loud) else x


# ---- augmentation -------------------------------------------------------------------------------

def noise(kind: str, rng: np.random.Generator, babble: list[np.ndarray]) -> np.ndarray:
    """1 s of unit-RMS background noise."""
    if kind == "white":
        y = rng.standard_normal(CLIP)
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(rng.standard_normal(CLIP))
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        spectrum /= np.sqrt(f) if kind == "pink" else f
        spectrum[0] = 0.0
        y = np.fft.irfft(spectrum, CLIP)
    elif kind == "hum":
        t = np.arange(CLIP) / SAMPLE_RATE
        base = rng.choice([50.0, 60.0])
        y = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
                for h in range(1, 8)) + 0.05 * rng.standard_normal(CLIP)
    else:  # babble: several other utterances at random places
        y = np.zeros(CLIP)
        for _ in range(int(rng.integers(3, 7))):
            u = babble[int(rng.integers(len(babble)))][:CLIP]
            start = int(rng.integers(0, CLIP - len(u) + 1))
            y[start:start + len(u)] += u / (np.sqrt(np.mean(u ** 2)) + 1e-9)
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12)).astype(np.float32)


def place(speech: np.ndarray, rng: np.random.Generator, max_shift: int = SAMPLE_RATE // 10) -> np.ndarray:
    """The speech about the centre of a 1 s clip, shifted by up to +-100 ms."""
    speech = speech[:CLIP]
    start = (CLIP - len(speech)) // 2 + int(rng.integers(-max_shift, max_shift + 1))
    start = min(max(start, 0), CLIP - len(speech))
    clip = np.zeros(CLIP, np.float32)
    clip[start:start + len(speech)] = speech
    return clip


# ---- the data set -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    seed: int = 0
    speakers: int = 256  # accent x variant pairs drawn (at most len(ACCENTS) * len(VARIANTS))
    copies: int = 3  # augmented clips per synthesized word
    held_out_variants: float = 0.2  # fraction of voice variants kept for the held-out split
    noise_probability: float = 0.8
    snr_db: tuple[float, float] = (0.0, 20.0)
    workers: int = 2


def speakers_for(recipe: Recipe) -> tuple[list[dict], list[dict]]:
    """(training speakers, held-out speakers): accent, variant, base pitch and rate."""
    rng = np.random.default_rng([recipe.seed, 1])
    variants = list(VARIANTS)
    rng.shuffle(variants)
    n_val = max(1, int(round(len(variants) * recipe.held_out_variants)))
    held_out = set(variants[:n_val])
    pairs = [(a, v) for a in ACCENTS for v in VARIANTS]
    total = min(recipe.speakers, len(pairs))
    order = rng.permutation(len(pairs))[:total]
    chosen = sorted((pairs[i] for i in order), key=lambda p: (ACCENTS.index(p[0]), VARIANTS.index(p[1])))
    train, val = [], []
    for accent, variant in chosen:
        s = {"accent": accent, "variant": variant, "pitch": int(rng.integers(20, 81)), "rate": int(rng.integers(130, 211))}
        (val if variant in held_out else train).append(s)
    return train, val


def _plan_utterances(speakers: list[dict], rng: np.random.Generator) -> list[tuple]:
    """(speaker index, label, word, rate, pitch) of every word to synthesize."""
    todo = []
    for i, s in enumerate(speakers):
        words = [(label, w) for label, w in enumerate(KEYWORDS)]
        words.append((LABELS.index("unknown"), UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))]))
        for label, w in words:
            rate = int(np.clip(s["rate"] + rng.integers(-15, 16), 80, 300))
            pitch = int(np.clip(s["pitch"] + rng.integers(-8, 9), 0, 99))
            todo.append((i, label, w, rate, pitch))
    return todo


def _clips(speakers: list[dict], recipe: Recipe, rng: np.random.Generator, espeak: str, progress=None):
    todo = _plan_utterances(speakers, rng)
    with ThreadPoolExecutor(max(1, recipe.workers)) as pool:
        speech = list(pool.map(lambda t: synthesize(t[2], speakers[t[0]]["accent"], speakers[t[0]]["variant"],
                                                    t[3], t[4], espeak), todo))
    if progress:
        progress(f"synthesized {len(todo)} words from {len(speakers)} speakers")
    clips, labels, who = [], [], []
    for (spk, label, _, _, _), s in zip(todo, speech):
        for _ in range(recipe.copies):
            clips.append(_augment(place(s, rng), recipe, rng, speech))
            labels.append(label)
            who.append(spk)
    silence = LABELS.index("silence")
    for spk in range(len(speakers)):  # as many silence clips as a keyword has
        for _ in range(recipe.copies):
            kind = NOISES[int(rng.integers(len(NOISES)))]
            level = float(np.exp(rng.uniform(np.log(0.002), np.log(0.2))))
            clips.append(level * noise(kind, rng, speech))
            labels.append(silence)
            who.append(spk)
    return np.stack(clips), np.asarray(labels, np.int64), np.asarray(who, np.int64)


def _augment(clip: np.ndarray, recipe: Recipe, rng: np.random.Generator, babble: list[np.ndarray]) -> np.ndarray:
    peak = float(np.exp(rng.uniform(np.log(0.05), np.log(0.9))))
    clip = clip * (peak / (np.abs(clip).max() + 1e-9))
    if rng.random() < recipe.noise_probability:
        kind = NOISES[int(rng.integers(len(NOISES)))]
        snr = rng.uniform(*recipe.snr_db)
        speech_rms = np.sqrt(np.mean(clip[np.abs(clip) > 0] ** 2)) if np.any(clip) else 0.0
        clip = clip + speech_rms * 10 ** (-snr / 20) * noise(kind, rng, babble)
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def build(recipe: Recipe = Recipe(), progress=None) -> dict[str, np.ndarray]:
    """The data set's arrays: x (N, 1, 49, 10) float32 MFCC and y of the
    training speakers, x_val / y_val of the held-out ones, the speaker of every
    clip ('accent+variant'), and the label names."""
    espeak = espeak_path()
    train_speakers, val_speakers = speakers_for(recipe)
    if not train_speakers or not val_speakers:
        raise McuforgeError(f"datasets keywords: --speakers {recipe.speakers} leaves "
                            f"{'no training' if not train_speakers else 'no held-out'} speaker; give more speakers")
    out: dict[str, np.ndarray] = {}
    for split, speakers, stream in (("", train_speakers, 2), ("_val", val_speakers, 3)):
        rng = np.random.default_rng([recipe.seed, stream])
        audio, y, who = _clips(speakers, recipe, rng, espeak, progress)
        out["x" + split] = mfcc(audio)[:, None]
        out["y" + split] = y
        out["speaker" + split] = np.asarray([f"{s['accent']}+{s['variant']}" for s in speakers])[who]
    out["labels"] = np.asarray(LABELS)
    return out


def digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---- command line --------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="FILE.npz", help="where to write the data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speakers", type=int, default=Recipe.speakers,
                        help=f"speakers (accent x voice variant) to draw, at most {len(ACCENTS) * len(VARIANTS)} "
                             f"(default {Recipe.speakers})")
    parser.add_argument("--copies", type=int, default=Recipe.copies,
                        help=f"augmented clips per synthesized word (default {Recipe.copies})")
    parser.add_argument("--workers", type=int, default=Recipe.workers, help="parallel espeak-ng processes")


def main(args) -> int:
    import sys
    import time

    for name in ("speakers", "copies", "workers"):
        if getattr(args, name) < 1:
            raise McuforgeError(f"datasets keywords: --{name} must be at least 1")
    out = Path(args.output)
    if out.suffix != ".npz":
        raise McuforgeError(f"datasets keywords: {out}: the output must be a .npz file")
    if not out.parent.is_dir():
        raise McuforgeError(f"datasets keywords: {out.parent}: no such directory")
    start = time.monotonic()
    say = None if args.quiet else (lambda m: print(f"[{time.monotonic() - start:6.1f}s] {m}", file=sys.stderr))
    arrays = build(Recipe(seed=args.seed, speakers=args.speakers, copies=args.copies, workers=args.workers), say)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    counts = np.bincount(arrays["y"], minlength=len(LABELS))
    print(f"wrote {out}: {len(arrays['y'])} training clips from {len(set(arrays['speaker']))} speakers, "
          f"{len(arrays['y_val'])} held-out clips from {len(set(arrays['speaker_val']))} unseen speakers; "
          f"{len(LABELS)} classes ({counts.min()}-{counts.max()} training clips each), x {arrays['x'].shape[1:]} "
          f"MFCC; sha256 {digest(arrays)[:16]}")
    return 0
