"""Host layer: the voices of the built-in keyword set, split between training and test: espeak-ng's
base voices (accents) and variants, and flite's voices, restricted to what is installed."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from s2eprop.host.data.espeak import (NO_VARIANT, TEST_BASE_VOICES, TEST_VARIANTS, TRAIN_BASE_VOICES, english_voices, espeak_version)
from s2eprop.host.data.flite import flite_voices
from s2eprop.host.errors import DataError


@dataclass(frozen=True)
class VoicePools:
    """Base voices and variants of each split, restricted to what the installed espeak-ng has, and
    the split's flite voices (`s2eprop.host.data.flite`)."""

    train_bases: tuple[str, ...]
    test_bases: tuple[str, ...]
    train_variants: tuple[str, ...]
    test_variants: tuple[str, ...]
    train_flite: tuple[str, ...] = ()
    test_flite: tuple[str, ...] = ()

    def bases(self, split: str) -> tuple[str, ...]:
        return self.train_bases if split == "train" else self.test_bases

    def variants(self, split: str) -> tuple[str, ...]:
        return self.train_variants if split == "train" else self.test_variants

    def flite(self, split: str) -> tuple[str, ...]:
        return self.train_flite if split == "train" else self.test_flite


@lru_cache(maxsize=1)
def voice_pools() -> VoicePools:
    """The split's voices that this espeak-ng (1.49-1.52 differ slightly) and flite have."""
    flite_train, flite_test = flite_voices()
    languages, variants = english_voices()
    pools = VoicePools(
        train_bases=tuple(v for v in TRAIN_BASE_VOICES if v in languages),
        test_bases=tuple(v for v in TEST_BASE_VOICES if v in languages),
        train_variants=(NO_VARIANT,) + tuple(v for v in variants if v not in TEST_VARIANTS),
        test_variants=tuple(v for v in TEST_VARIANTS if v in variants),
        train_flite=flite_train, test_flite=flite_test,
    )
    if not (pools.train_bases and pools.test_bases and pools.test_variants):
        raise DataError(f"espeak-ng ({espeak_version()}) lacks the English voices of the synthetic set: "
                        f"has {', '.join(sorted(languages)) or 'none'}; needs some of "
                        f"{', '.join(TRAIN_BASE_VOICES)} and of {', '.join(TEST_BASE_VOICES)}")
    return pools
