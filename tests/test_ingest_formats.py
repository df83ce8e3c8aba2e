"""Every format and tag system of docs/formats.md, generated here: tags come back whatever
their key's case, odd files get an outcome (never a crash), durations and encoder delay."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from musicark.store.probe import analyse
from musicark.store.tags import read_tags
from tests.odd_audio import (
    broken_dsf,
    dsf,
    encoded,
    header_only,
    set_mp3_padding,
    set_opus_preskip,
    theora_beside,
    wma_with_codec,
)

DOC = Path(__file__).parents[1] / "docs" / "formats.md"
VALUES = {
    "title": "Tïtle of the Song",
    "artist": "Anna Berg",
    "album": "Silver Album",
    "albumartist": "Various Artists",
    "isrc": "USX9P2500001",
    "tracknumber": "3",
    "discnumber": "2",
    "date": "2021",
    "genre": "Folk",
    "label": "Small Label",
    "barcode": "123456789012",
    "musicbrainz_trackid": "0b4f6a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
    "musicbrainz_albumid": "1b4f6a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
    "musicbrainz_artistid": "2b4f6a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
    "acoustid_id": "3b4f6a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b",
}


def table(heading: str) -> list[list[str]]:
    """The rows of the first table under `## heading` in docs/formats.md."""
    text = DOC.read_text(encoding="utf-8").split(f"## {heading}\n", 1)[1]
    rows: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


FORMATS = {r[0]: (r[1], r[2]) for r in table("Formats")}
FIELDS = table("Fields")
SYSTEMS = ["ID3v2", "Vorbis comment", "MP4 atoms", "APEv2", "ASF"]


def keys(system: str) -> dict[str, str]:
    """field -> the key a tagger writes in `system` (from the docs)."""
    col = SYSTEMS.index(system) + 1
    return {row[0]: row[col] for row in FIELDS}


def write_id3(path: Path) -> None:
    import mutagen
    from mutagen import id3

    f = mutagen.File(str(path))
    if f.tags is None:
        f.add_tags()
    for field, key in keys("ID3v2").items():
        value = VALUES[field]
        if key.startswith("TXXX:"):
            f.tags.add(id3.TXXX(encoding=3, desc=key[5:], text=[value]))
        elif key.startswith("UFID:"):
            f.tags.add(id3.UFID(owner=key[5:], data=value.encode()))
        else:
            f.tags.add(getattr(id3, key)(encoding=3, text=[value]))
    f.save()


def write_vorbis(path: Path) -> None:
    import mutagen

    f = mutagen.File(str(path))
    for field, key in keys("Vorbis comment").items():
        f.tags[key] = [VALUES[field]]
    f.save()


def write_mp4(path: Path) -> None:
    from mutagen.mp4 import MP4, MP4FreeForm

    f = MP4(str(path))
    if f.tags is None:
        f.add_tags()
    for field, key in keys("MP4 atoms").items():
        value = VALUES[field]
        if key.startswith("----"):
            f.tags[key] = [MP4FreeForm(value.encode())]
        elif key in ("trkn", "disk"):
            f.tags[key] = [(int(value), 0)]
        else:
            f.tags[key] = [value]
    f.save()


def write_ape(path: Path) -> None:
    from mutagen.apev2 import APEv2

    tag = APEv2()
    for field, key in keys("APEv2").items():
        tag[key] = VALUES[field]  # keys as taggers write them: Title, Album Artist, ISRC
    tag.save(str(path))


def write_asf(path: Path) -> None:
    from mutagen.asf import ASF

    f = ASF(str(path))
    for field, key in keys("ASF").items():
        f.tags[key] = [VALUES[field]]
    f.save()


def theora(path: Path) -> Path:
    vorbis = encoded(path.with_suffix(".plain.ogg"))
    comments = {key: VALUES[field] for field, key in keys("Vorbis comment").items()}
    return theora_beside(vorbis, path, comments)


WRITERS: dict[str, Callable[[Path], None]] = {
    "ID3v2": write_id3,
    "Vorbis comment": write_vorbis,
    "MP4 atoms": write_mp4,
    "APEv2": write_ape,
    "ASF": write_asf,
}
MAKERS: dict[str, Callable[[Path], Path]] = {
    "MP3": lambda p: encoded(p),
    "FLAC": lambda p: encoded(p),
    "Ogg Vorbis": lambda p: encoded(p),
    "Ogg Opus": lambda p: encoded(p),
    "Ogg FLAC": lambda p: encoded(p),
    "Ogg Theora (comments in the video stream)": theora,
    "MPEG-4 AAC": lambda p: encoded(p),
    "MPEG-4 ALAC": lambda p: encoded(p, fmt="alac"),
    "Windows Media Audio": lambda p: encoded(p),
    "WavPack": lambda p: encoded(p),
    "Monkey's Audio": lambda p: header_only(p, "ape"),
    "Musepack": lambda p: header_only(p, "mpc"),
    "TAK": lambda p: header_only(p, "tak"),
    "OptimFROG": lambda p: header_only(p, "ofr"),
    "True Audio": lambda p: encoded(p),
    "AIFF": lambda p: encoded(p),
    "WAV": lambda p: encoded(p),
    "DSF": lambda p: dsf(p),
}


def test_the_docs_list_every_format_the_test_makes() -> None:
    assert set(FORMATS) == set(MAKERS)
    assert {system for _ext, system in FORMATS.values()} <= set(WRITERS)
    assert {row[0] for row in FIELDS} == set(VALUES)


def _pyav_names(path: Path) -> tuple[str | None, str | None]:
    try:
        a = analyse(path, fingerprint=False)
    except Exception:
        return None, None
    return a.container, a.codec


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_every_field_of_every_format_is_read(tmp_path: Path, name: str) -> None:
    ext, system = FORMATS[name]
    path = MAKERS[name](tmp_path / f"song{ext}")
    if name != "Ogg Theora (comments in the video stream)":
        WRITERS[system](path)
    container, codec = _pyav_names(path)
    tags, problem = read_tags(path, container=container, codec=codec)
    assert problem is None
    assert tags == {field: [value] for field, value in VALUES.items()}, (container, codec)


def ingest_one(run, path: Path) -> tuple[str, str, dict[str, object] | None]:
    out = json.loads(run("ingest", path.parent, "--json", check=False).output)
    conn = sqlite3.connect(run.archive.state_path)
    try:
        status, reason, sha = conn.execute(
            "SELECT status, reason, sha256 FROM ledger WHERE path LIKE ?", (f"%{path.name}",)
        ).fetchone()
        row = conn.execute(
            "SELECT codec, duration_ms, damaged, tags FROM blobs WHERE sha256 = ?", (sha,)
        ).fetchone()
    finally:
        conn.close()
    assert out["files"] >= 1
    blob = None
    if row:
        blob = {"codec": row[0], "duration_ms": row[1], "damaged": row[2], "tags": row[3]}
    return status, reason, blob


def test_a_dsf_whose_demuxing_fails_is_its_own_outcome(run, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = broken_dsf(src / "broken.dsf")
    encoded(src / "fine.ogg")
    status, reason, blob = ingest_one(run, bad)
    assert status == "error_corrupt" and "Invalid data" in reason, reason
    assert blob is None
    assert run("audit", "--level", "full").exit_code == 0
    assert not list((run.archive.staging_dir / "ingest").iterdir())


def test_a_good_dsf_is_stored_as_lossless_dsd(run, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    status, reason, blob = ingest_one(run, dsf(src / "good.dsf"))
    assert status == "unmatched", reason
    assert blob is not None and blob["codec"].startswith("dsd_")


def test_durations_are_never_negative(run, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    # LAME gapless padding larger than the audio: the header's length comes out negative
    path = set_mp3_padding(encoded(src / "short.mp3", seconds=0.03), 4000)
    _status, _reason, blob = ingest_one(run, path)
    assert blob is not None and blob["duration_ms"] is not None
    assert blob["duration_ms"] >= 0, blob
    a = analyse(path, fingerprint=False)
    assert a.duration_ms is None or a.duration_ms >= 0


def test_opus_pre_skip_is_not_damage(run, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    path = set_opus_preskip(encoded(src / "long-pre-skip.opus", seconds=12.7), 62400)
    status, reason, blob = ingest_one(run, path)
    assert status == "unmatched", reason
    assert blob is not None and blob["damaged"] is None
    assert abs(blob["duration_ms"] - (12700 - 1300)) < 60, blob


@pytest.mark.parametrize("codec_tag", [0x7777, 0x0162])
def test_a_wma_the_decoder_cannot_read_keeps_its_tags(run, tmp_path, codec_tag) -> None:
    src = tmp_path / "in"
    src.mkdir()
    path = encoded(src / "song.wma", seconds=3)
    write_asf(path)
    wma_with_codec(path, codec_tag)
    status, reason, blob = ingest_one(run, path)
    assert status == "unmatched", reason
    assert "cannot be decoded" in reason and "not an audio file" not in reason
    assert blob is not None
    assert json.loads(str(blob["tags"]))["title"] == [VALUES["title"]]
    assert 2900 < int(str(blob["duration_ms"])) < 3200


def test_formats_ffmpeg_cannot_write_are_named_not_dismissed(run, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for kind in ("ape", "mpc", "tak"):
        header_only(src / f"x.{kind}", kind)
    run("ingest", src, "--json", check=False)
    conn = sqlite3.connect(run.archive.state_path)
    statuses = dict(conn.execute("SELECT path, status FROM ledger").fetchall())
    conn.close()
    # a header without audio is a corrupt file of that format, not "not audio"
    assert set(statuses.values()) == {"error_corrupt"}, statuses


def test_theora_comments_are_read_beside_vorbis(tmp_path) -> None:
    path = theora(tmp_path / "video.ogv")
    a = analyse(path)
    assert a.codec == "vorbis" and a.damaged is None
    tags, _ = read_tags(path, container=a.container, codec=a.codec)
    assert tags["title"] == [VALUES["title"]]


def test_ape_keys_in_any_case(tmp_path) -> None:
    from mutagen.apev2 import APEv2

    path = encoded(tmp_path / "x.wv")
    tag = APEv2()
    tag["TITLE"] = "upper"
    tag["Artist"] = "Mixed"
    tag["isrc"] = "USX9P2500009"
    tag.save(str(path))
    tags, _ = read_tags(path, container="wv", codec="wavpack")
    assert tags == {"title": ["upper"], "artist": ["Mixed"], "isrc": ["USX9P2500009"]}


def test_reason_names_the_failure(tmp_path) -> None:
    # a demuxer failure keeps FFmpeg's message in the reason
    from musicark.store.ledger import Rejected

    with pytest.raises(Rejected) as info:
        analyse(broken_dsf(tmp_path / "b.dsf"))
    assert re.search(r"no decodable audio: .*Invalid data", info.value.reason)


# what FFmpeg calls the formats it reads but cannot write (a header alone does not open)
PYAV_NAMES = {
    "Monkey's Audio": ("ape", "ape"),
    "Musepack": ("musepack8", "mpc8"),
    "TAK": ("tak", "tak"),
}


@pytest.mark.parametrize("name", sorted(set(MAKERS) - {"OptimFROG"}))
def test_release_extension_of_every_format(tmp_path: Path, name: str) -> None:
    from musicark.release.names import extension

    ext, _system = FORMATS[name]
    if name in PYAV_NAMES:
        codec, container = PYAV_NAMES[name]
    else:
        a = analyse(MAKERS[name](tmp_path / f"song{ext}"), fingerprint=False)
        codec, container = a.codec, a.container
    expected = "ogg" if ext == ".ogv" else ext.lstrip(".")  # the audio of a video file
    assert extension(codec, container) == expected


def test_lossless_formats_rank_first(run, tmp_path) -> None:
    from musicark.store.probe import is_lossless
    from tests.audio import import_catalog_rows, track

    for codec in (
        "flac",
        "alac",
        "wavpack",
        "ape",
        "tak",
        "tta",
        "pcm_s16le",
        "pcm_s16be",
        "dsd_lsbf_planar",
        "wmalossless",
    ):
        assert is_lossless(codec), codec
    for codec in ("mp3float", "aac", "opus", "vorbis", "wmav2", "musepack8"):
        assert not is_lossless(codec), codec
    import_catalog_rows(run.archive, [track("t1", "Deep", "Dee", isrc="USX9P2500077")], tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    from mutagen import id3

    for path in (dsf(src / "a.dsf"), encoded(src / "b.mp3"), encoded(src / "c.wv")):
        f = __import__("mutagen").File(str(path))
        if path.suffix == ".wv":
            f.add_tags()
            f.tags["ISRC"] = "USX9P2500077"
        else:
            if f.tags is None:
                f.add_tags()
            f.tags.add(id3.TSRC(encoding=3, text=["USX9P2500077"]))
        f.save()
    run("ingest", src, "--json")
    conn = sqlite3.connect(run.archive.state_path)
    rows = conn.execute(
        "SELECT b.codec, b.lossless, r.preferred FROM renditions r JOIN blobs b USING (sha256)"
        " WHERE r.track_id IS NOT NULL"
    ).fetchall()
    conn.close()
    assert len(rows) == 3
    assert {codec: bool(lossless) for codec, lossless, _ in rows} == {
        "dsd_lsbf_planar": True,
        "mp3float": False,
        "wavpack": True,
    }
    assert next(c for c, _, preferred in rows if preferred) != "mp3float"


def _mutants(src: Path, count: int, seed: int) -> int:
    """Broken variants of one file per format: cut short, bytes flipped, a hole of zeros."""
    import random

    from musicark.store.synthetic import FORMATS as ENCODABLE

    rng = random.Random(seed)
    originals = [encoded(src / f"orig.{ext}", seed=7) for ext in sorted(ENCODABLE) if ext != "alac"]
    originals.append(dsf(src / "orig.dsf"))
    n = 0
    for orig in originals:
        data = orig.read_bytes()
        for i in range(count):
            b = bytearray(data)
            kind = i % 3
            if kind == 0:
                b = b[: rng.randrange(1, len(b))]
            elif kind == 1:
                for _ in range(rng.randrange(1, 16)):
                    b[rng.randrange(0, min(len(b), 4096))] = rng.randrange(256)
            else:
                start = rng.randrange(0, len(b))
                b[start : start + rng.randrange(1, 4096)] = bytes(rng.randrange(1, 4096))
            (src / f"m{i:03d}-{orig.name}").write_bytes(bytes(b))
            n += 1
        orig.unlink()
    return n


def _every_file_gets_an_outcome(run, tmp_path: Path, count: int, seed: int) -> None:
    from musicark.store.ledger import STATUSES

    src = tmp_path / "in"
    src.mkdir()
    n = _mutants(src, count, seed)
    result = run("ingest", src, "--jobs", "2", "--json", check=False)
    assert result.exit_code in (0, 1), result.output
    summary = json.loads(result.output)
    assert summary["files"] == n
    conn = sqlite3.connect(run.archive.state_path)
    statuses = [s for (s,) in conn.execute("SELECT status FROM ledger")]
    conn.close()
    assert len(statuses) == n and set(statuses) <= set(STATUSES), set(statuses)
    assert run("audit", "--level", "full").exit_code == 0
    assert not list((run.archive.staging_dir / "ingest").iterdir())


def test_broken_files_of_every_format_each_get_an_outcome(run, tmp_path) -> None:
    _every_file_gets_an_outcome(run, tmp_path, count=3, seed=1)


@pytest.mark.slow
def test_many_broken_files_each_get_an_outcome(run, tmp_path) -> None:
    _every_file_gets_an_outcome(run, tmp_path, count=40, seed=2)
