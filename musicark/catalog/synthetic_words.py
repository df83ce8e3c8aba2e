"""Realistic synthetic catalogues: Zipfian multilingual names, skewed albums and popularity.

Words come from the `wordfreq` package's frequency lists (shipped inside the package, no
network): each language keeps its most frequent alphabetic words and draws them by their
real frequency, so common words ("love", "the", "de") are common in titles and rare ones
rare, as in a streaming catalogue. Albums are singles, EPs and full albums; a few artists
have many albums and most have one. Popularity is log-scaled from a Zipf ranking: ~70 %
of tracks at 0, ~0.1 % at 50 or more; album and artist popularity follow their tracks'.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicark.catalog.synthetic import (
    _BAND,
    _Albums,
    _Artists,
    _assemble,
    _credit_lists,
    _digits,
    _isrcs,
    _pick,
    _release_dates,
)

# language: share of names in it (roughly a large streaming catalogue's mix)
LANGUAGES = {
    "en": 0.40,
    "es": 0.12,
    "pt": 0.08,
    "de": 0.07,
    "fr": 0.07,
    "ja": 0.05,
    "it": 0.04,
    "ru": 0.04,
    "nl": 0.03,
    "sv": 0.03,
    "pl": 0.03,
    "tr": 0.04,
}
WORDS_PER_LANGUAGE = 15_000


@dataclass(frozen=True)
class Vocabulary:
    words: np.ndarray  # object array of every language's words, language after language
    cdf: np.ndarray  # language k's cumulative frequencies, shifted by k: one searchsorted
    shares: np.ndarray  # each language's share of names


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The word lists (a few seconds to load; cached per process)."""
    import wordfreq

    words: list[str] = []
    cdfs: list[np.ndarray] = []
    for k, lang in enumerate(LANGUAGES):
        chosen: list[str] = []
        freqs: list[float] = []
        # buckets of equal frequency, 10^(-i/100) each, most frequent first
        for i, bucket in enumerate(wordfreq.get_frequency_list(lang, wordlist="best")):
            for w in bucket:
                if (
                    w.isalpha()
                    and (len(w) > 1 or lang == "ja")
                    and len(chosen) < WORDS_PER_LANGUAGE
                ):
                    chosen.append(w)
                    freqs.append(10 ** (-i / 100))
            if len(chosen) >= WORDS_PER_LANGUAGE:
                break
        f = np.asarray(freqs)
        cdf = np.cumsum(f) / f.sum()
        cdf[-1] = 1.0
        words.extend(chosen)
        cdfs.append(cdf + k)
    shares = np.asarray(list(LANGUAGES.values()))
    return Vocabulary(np.asarray(words, dtype=object), np.concatenate(cdfs), shares / shares.sum())


def _words(rng: np.random.Generator, voc: Vocabulary, lang: np.ndarray) -> np.ndarray:
    """One word per row, in that row's language, drawn by frequency."""
    idx = np.searchsorted(voc.cdf, lang + rng.random(len(lang)), side="right")
    return voc.words[np.minimum(idx, len(voc.words) - 1)]


def _names(
    rng: np.random.Generator, voc: Vocabulary, lang: np.ndarray, p_words: list[float]
) -> pa.Array:
    """Names of 1..len(p_words) words (their shares in `p_words`), first letter capitalised."""
    n = len(lang)
    count = rng.choice(np.arange(1, len(p_words) + 1), n, p=p_words)
    parts = []
    for slot in range(len(p_words)):
        drawn = _words(rng, voc, lang)
        parts.append(pa.array(drawn, pa.string(), mask=count <= slot))
    joined = pc.binary_join_element_wise(*parts, " ", null_handling="skip")
    return pc.utf8_capitalize(joined)


def _album_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each track's album: singles (1-2 tracks), EPs (3-6) and albums (8-20), in order."""
    kind = rng.choice(3, n // 3 + 1, p=[0.4, 0.25, 0.35])
    low, high = np.array([1, 3, 8])[kind], np.array([3, 7, 21])[kind]
    sizes = rng.integers(low, high)
    used = int(np.searchsorted(np.cumsum(sizes), n)) + 1
    return np.repeat(np.arange(used), sizes[:used])[:n]


def generate_realistic(
    n: int,
    *,
    seed: int = 0,
    source: str = "synthetic",
    rights: dict[str, float] | None = None,
    play_count_share: float = 0.5,
) -> pa.Table:
    """`n` tracks in the interchange format, names from real word frequencies."""
    voc = vocabulary()
    rng = np.random.default_rng(seed)
    rank = rng.permutation(n) + 1
    plays = np.floor(5e8 / rank.astype(np.float64) ** 1.1)
    # rank share 0.1 % -> 50, 30 % and below -> 0, top millionth -> 100
    q = rank / max(n, 1)
    popularity = np.clip(np.floor(50 * np.log10(q / 0.3) / np.log10(0.001 / 0.3)), 0, 100)
    popularity = popularity.astype(np.int64)
    has_plays = rng.random(n) < play_count_share

    of_track = _album_sizes(rng, n)
    n_albums = int(of_track[-1]) + 1 if n else 1
    n_artists = max(1, n_albums // 2)
    # a few prolific artists, most with one or two releases
    album_artist = rng.permutation(n_artists)[
        np.minimum((n_artists * rng.random(n_albums) ** 2.5).astype(np.int64), n_artists - 1)
    ]
    artist_lang = rng.choice(len(voc.shares), n_artists, p=voc.shares)
    album_lang = artist_lang[album_artist]

    album_pop = np.zeros(n_albums, dtype=np.int64)
    np.maximum.at(album_pop, of_track, popularity)
    artist_pop = np.zeros(n_artists, dtype=np.int64)
    np.maximum.at(artist_pop, album_artist, album_pop)
    followers = np.floor(10 ** (artist_pop / 15 + rng.uniform(0, 2, n_artists))).astype(np.int64)

    bands = rng.random(n_artists) < 0.15
    artist_names = _names(rng, voc, artist_lang, [0.35, 0.45, 0.2])
    artist_names = pc.if_else(
        pa.array(bands),
        pc.binary_join_element_wise(_pick(rng, _BAND, n_artists), artist_names, " "),
        artist_names,
    )
    artist_ids = pc.binary_join_element_wise(
        "ar", pa.array(np.arange(n_artists)).cast(pa.string()), ""
    )
    artist_pool = _Artists(artist_names, artist_ids, artist_pop, followers)

    year, date, prec = _release_dates(rng, n_albums)
    album_titles = _names(rng, voc, album_lang, [0.4, 0.35, 0.25])
    albums = _Albums(
        of_track,
        album_artist,
        year,
        date,
        prec,
        album_titles,
        _digits(rng, n_albums, 12),
        album_pop,
    )
    artists = _credit_lists(rng, n, n_artists, artist_pool, albums)
    titles = _names(rng, voc, album_lang[of_track], [0.3, 0.35, 0.2, 0.15])
    isrc = _isrcs(rng, n, albums)
    return _assemble(
        rng,
        n,
        source=source,
        rights=rights,
        popularity=popularity,
        plays=plays,
        has_plays=has_plays,
        artists=artists,
        albums=albums,
        n_albums=n_albums,
        titles=titles,
        isrc=isrc,
    )
