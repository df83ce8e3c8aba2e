"""Seeded synthetic catalogues in the interchange format, for the demo, tests and benchmarks.

Popularity follows a Zipf law over a random ranking (most tracks end at 0, as in real
streaming catalogues); names come from word lists; ISRCs and UPCs are well-formed.
Generation is vectorised: 10 M tracks take seconds, not minutes.

`vocabulary="wordfreq"` makes a catalogue realistic enough to measure search and plans on:
names drawn from the word-frequency lists of the `wordfreq` package (a dozen languages,
~150 k distinct words, each language's own Zipf law), albums of very different sizes,
prolific and one-album artists, and popularity as streaming services report it (about
70 % of tracks at 0, ~0.1 % at 50 or more). The default vocabulary stays byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_WORDS = [
    "love",
    "night",
    "heart",
    "fire",
    "rain",
    "dream",
    "light",
    "summer",
    "blue",
    "river",
    "road",
    "home",
    "gold",
    "wild",
    "shadow",
    "moon",
    "star",
    "dance",
    "city",
    "silver",
    "ocean",
    "storm",
    "wind",
    "song",
    "morning",
    "echo",
    "glass",
    "midnight",
    "paper",
    "stone",
    "honey",
    "velvet",
    "thunder",
    "winter",
    "garden",
    "mirror",
    "highway",
    "ghost",
    "sugar",
    "crystal",
    "neon",
    "desert",
    "island",
    "memory",
    "forever",
    "yesterday",
    "tomorrow",
    "angel",
    "café",
    "naïve",
    "señor",
    "über",
    "déjà",
    "Ådalen",
    "Øresund",
    "Zoë",
    "Björk",
    "straße",
]
_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Kira",
    "Leo",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Uma",
    "Viktor",
    "Wren",
    "Xavi",
    "Yara",
    "Zoltán",
    "Émile",
    "Ñaki",
]
_LAST = [
    "Adams",
    "Berg",
    "Costa",
    "Dahl",
    "Evans",
    "Fischer",
    "García",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Müller",
    "Nakamura",
    "Olsen",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Vega",
    "Weber",
    "Young",
    "Zhou",
]
_BAND = ("The", "Los", "Die", "Les")
_GENRES = ("rock", "pop", "jazz", "classical", "folk", "electronic", "hip hop", "blues")
_ROLES = ("main", "featured")


def _pick(rng: np.random.Generator, words: tuple[str, ...] | list[str], n: int) -> pa.Array:
    return pa.array(np.asarray(words, dtype=object)[rng.integers(0, len(words), n)], pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, " ")


def _digits(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    nums = rng.integers(0, 10**width, n)
    return pc.utf8_lpad(pa.array(nums).cast(pa.string()), width, "0")


@dataclass(frozen=True)
class _Artists:
    names: pa.Array
    ids: pa.Array
    popularity: np.ndarray
    followers: np.ndarray


@dataclass(frozen=True)
class _Albums:
    of_track: np.ndarray  # each track's album index
    artist: np.ndarray  # each album's artist index
    year: np.ndarray
    date: pa.Array
    precision: pa.Array
    titles: pa.Array
    upc: pa.Array
    popularity: np.ndarray


def _artist_pool(rng: np.random.Generator, n_artists: int) -> _Artists:
    """Artists: names and stats, drawn once, referenced by index."""
    solo = rng.random(n_artists) < 0.6
    names = pc.if_else(
        pa.array(solo),
        _join(_pick(rng, _FIRST, n_artists), _pick(rng, _LAST, n_artists)),
        _join(
            _pick(rng, _BAND, n_artists),
            _pick(rng, _WORDS, n_artists),
            _pick(rng, _WORDS, n_artists),
        ),
    )
    ids = pc.binary_join_element_wise("ar", pa.array(np.arange(n_artists)).cast(pa.string()), "")
    popularity = np.clip(rng.normal(20, 20, n_artists), 0, 100).astype(np.int64)
    followers = np.floor(10 ** rng.uniform(0, 7, n_artists)).astype(np.int64)
    return _Artists(names, ids, popularity, followers)


def _release_dates(
    rng: np.random.Generator, n_albums: int
) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Release years, dates at year/month/day precision, and the precisions."""
    year = rng.integers(1920, 2026, n_albums)
    month = rng.integers(1, 13, n_albums)
    day = rng.integers(1, 29, n_albums)
    precision = rng.choice(
        np.array(["year", "month", "day"], dtype=object), n_albums, p=[0.2, 0.1, 0.7]
    )
    ys = pa.array(year).cast(pa.string())
    ms = pc.utf8_lpad(pa.array(month).cast(pa.string()), 2, "0")
    ds = pc.utf8_lpad(pa.array(day).cast(pa.string()), 2, "0")
    prec = pa.array(precision, pa.string())
    date = pc.if_else(
        pc.equal(prec, "year"),
        ys,
        pc.if_else(
            pc.equal(prec, "month"),
            pc.binary_join_element_wise(ys, ms, "-"),
            pc.binary_join_element_wise(ys, ms, ds, "-"),
        ),
    )
    return year, date, prec


def _album_pool(rng: np.random.Generator, n: int, n_albums: int, n_artists: int) -> _Albums:
    """Albums: each belongs to an artist; tracks are spread over them."""
    of_track = np.sort(rng.integers(0, n_albums, n))
    artist = rng.integers(0, n_artists, n_albums)
    year, date, prec = _release_dates(rng, n_albums)
    titles = _join(_pick(rng, _WORDS, n_albums), _pick(rng, _WORDS, n_albums))
    upc = _digits(rng, n_albums, 12)
    popularity = np.clip(rng.normal(15, 15, n_albums), 0, 100).astype(np.int64)
    return _Albums(of_track, artist, year, date, prec, titles, upc, popularity)


def _credit_lists(
    rng: np.random.Generator, n: int, n_artists: int, artists: _Artists, albums: _Albums
) -> pa.ListArray:
    """Tracks: 1-3 artists, the album's artist first."""
    n_credits = rng.choice(np.array([1, 2, 3]), n, p=[0.8, 0.15, 0.05])
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(n_credits, out=offsets[1:])
    credit_artist = rng.integers(0, n_artists, int(offsets[-1]))
    credit_artist[offsets[:-1]] = albums.artist[albums.of_track]
    position = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], n_credits)
    role = np.where(position == 0, 0, 1)
    struct = pa.StructArray.from_arrays(
        [
            artists.ids.take(pa.array(credit_artist)),
            artists.names.take(pa.array(credit_artist)),
            pa.array(np.asarray(_ROLES, dtype=object)[role], pa.string()),
            pa.array(artists.popularity[credit_artist]),
            pa.array(artists.followers[credit_artist]),
        ],
        names=["id", "name", "role", "popularity", "followers"],
    )
    return pa.ListArray.from_arrays(pa.array(offsets), struct)


def _titles_and_isrcs(
    rng: np.random.Generator, n: int, albums: _Albums
) -> tuple[pa.Array, pa.Array]:
    titles = pc.if_else(
        pa.array(rng.random(n) < 0.5),
        _join(_pick(rng, _WORDS, n), _pick(rng, _WORDS, n)),
        _join(_pick(rng, _WORDS, n), _pick(rng, _WORDS, n), _pick(rng, _WORDS, n)),
    )
    return titles, _isrcs(rng, n, albums)


def _isrcs(rng: np.random.Generator, n: int, albums: _Albums) -> pa.Array:
    isrc = pc.binary_join_element_wise(
        _pick(rng, ["US", "GB", "DE", "SE", "FR", "JP"], n),
        _pick(rng, ["ABC", "XYZ", "K7Q", "M2R", "UM7"], n),
        pc.utf8_lpad(pa.array(albums.year[albums.of_track] % 100).cast(pa.string()), 2, "0"),
        _digits(rng, n, 5),
        "",
    )
    # One track in ~50 repeats another's ISRC (the same recording on a compilation).
    dup = rng.random(n) < 0.02
    isrc_np = np.asarray(isrc.to_numpy(zero_copy_only=False), dtype=object)
    isrc_np[dup] = isrc_np[rng.integers(0, n, int(dup.sum()))]
    return pa.array(isrc_np, pa.string())


def generate_catalog(
    n: int,
    *,
    seed: int = 0,
    source: str = "synthetic",
    rights: dict[str, float] | None = None,
    play_count_share: float = 0.5,
    vocabulary: str = "basic",
) -> pa.Table:
    """`n` tracks as an interchange-format Arrow table (see docs/catalogue-format.md).

    The helpers draw from one generator in a fixed order: the same seed gives the same
    catalogue, byte for byte. `vocabulary` is "basic" (a few dozen words, the default) or
    "wordfreq" (see the module docstring).
    """
    if vocabulary == "wordfreq":
        from musicark.catalog.synthetic_words import generate_realistic

        return generate_realistic(
            n, seed=seed, source=source, rights=rights, play_count_share=play_count_share
        )
    if vocabulary != "basic":
        raise ValueError(f"unknown vocabulary {vocabulary!r}: use 'basic' or 'wordfreq'")
    rng = np.random.default_rng(seed)
    n_artists = max(1, n // 8)
    n_albums = max(1, n // 10)

    # Zipf listens over a random ranking; popularity is log-scaled to 0-100.
    rank = rng.permutation(n) + 1
    plays = np.floor(5e8 / rank.astype(np.float64) ** 1.1)
    top = np.log10(max(plays.max(), 10.0))
    popularity = np.clip(np.floor(100 * (np.log10(plays + 1) - 3) / (top - 3)), 0, 100)
    has_plays = rng.random(n) < play_count_share

    artist_pool = _artist_pool(rng, n_artists)
    albums = _album_pool(rng, n, n_albums, n_artists)
    artists = _credit_lists(rng, n, n_artists, artist_pool, albums)
    titles, isrc = _titles_and_isrcs(rng, n, albums)

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


def _assemble(
    rng: np.random.Generator,
    n: int,
    *,
    source: str,
    rights: dict[str, float] | None,
    popularity: np.ndarray,
    plays: np.ndarray,
    has_plays: np.ndarray,
    artists: pa.ListArray,
    albums: _Albums,
    n_albums: int,
    titles: pa.Array,
    isrc: pa.Array,
) -> pa.Table:
    """The interchange table; draws the per-track details left (same order for a seed)."""
    rights = rights or {
        "cc0": 0.3,
        "cc-by": 0.2,
        "public-domain": 0.1,
        "all-rights-reserved": 0.3,
        "unknown": 0.1,
    }
    r_names = np.asarray(list(rights), dtype=object)
    r_p = np.asarray(list(rights.values()), dtype=np.float64)
    genres_idx = rng.integers(0, len(_GENRES), n)
    genres = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)),
        pa.array(np.asarray(_GENRES, dtype=object)[genres_idx], pa.string()),
    )
    ids = pc.binary_join_element_wise("tr", pa.array(np.arange(n)).cast(pa.string()), "")
    alb = pa.array(albums.of_track)
    return pa.table(
        {
            "source": pa.repeat(pa.scalar(source), n),
            "id": ids,
            "title": titles,
            "isrc": isrc,
            "duration_ms": pa.array(
                np.clip(rng.normal(210_000, 60_000, n), 30_000, 900_000).astype(np.int64)
            ),
            "popularity": pa.array(popularity.astype(np.int64)),
            "play_count": pa.array(plays.astype(np.int64), mask=~has_plays),
            "track_number": pa.array(rng.integers(1, 15, n)),
            "disc_number": pa.array(np.ones(n, dtype=np.int64)),
            "explicit": pa.array(rng.random(n) < 0.1),
            "rights": pa.array(rng.choice(r_names, n, p=r_p / r_p.sum()), pa.string()),
            "license_url": pa.nulls(n, pa.string()),
            "genres": genres,
            "artists": artists,
            "album_id": pc.binary_join_element_wise("al", alb.cast(pa.string()), ""),
            "album_title": albums.titles.take(alb),
            "album_type": pa.repeat(pa.scalar("album"), n),
            "album_upc": albums.upc.take(alb),
            "album_label": _pick(
                rng, ["Free Music Archive", "Netlabel", "Self-released"], n_albums
            ).take(alb),
            "album_release_date": albums.date.take(alb),
            "album_release_date_precision": albums.precision.take(alb),
            "album_popularity": pa.array(albums.popularity).take(alb),
            "album_total_tracks": pa.array(np.bincount(albums.of_track, minlength=n_albums)).take(
                alb
            ),
        }
    )
