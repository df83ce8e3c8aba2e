"""The FLAC tail check: the last frame header in a file's tail tells where its audio
ends, without a demuxer seek (probe.flac_tail_end); real FLAC from FFmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicark.store.probe import analyse, flac_tail_end
from musicark.store.synthetic import encode, song


@pytest.fixture(scope="module")
def flacs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, float]]:
    # `rate` is the signal's: FFmpeg resamples it to the codec's rate
    d = tmp_path_factory.mktemp("flac")
    out = []
    for i, (seconds, rate) in enumerate([(8.0, 44100), (3.3, 48000), (0.7, 44100)]):
        path = encode(d / f"f{i}.flac", song(60 + i, seconds), rate=rate)
        out.append((path, seconds))
    return out


def test_complete_files_end_where_declared(flacs: list[tuple[Path, float]]) -> None:
    for path, _ in flacs:
        data = path.read_bytes()
        a = analyse(path, fingerprint=False)
        assert a.damaged is None and a.duration_ms
        end = flac_tail_end(path, len(data))
        assert end is not None and abs(end - a.duration_ms / 1000) < 0.002, (path.name, end)
        assert flac_tail_end(path, len(data), data) == end
        # a trailing tag (ID3v1) after the last frame does not hide the end
        tagged = data + b"TAG" + bytes(125)
        assert flac_tail_end(path, len(tagged), tagged) == end


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_truncated_files_end_short(
    flacs: list[tuple[Path, float]], tmp_path: Path, fraction: float
) -> None:
    path, seconds = flacs[0]
    data = path.read_bytes()
    cut = data[: int(len(data) * fraction)]
    end = flac_tail_end(path, len(cut), cut)
    assert end is not None and 0 < end < seconds - 1.0
    short = tmp_path / "cut.flac"
    short.write_bytes(cut)
    a = analyse(short, fingerprint=False)
    assert a.damaged is not None and "truncated" in a.damaged


def test_no_frame_header_in_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "x.flac"
    data = b"fLaC" + bytes(200)
    path.write_bytes(data)
    assert flac_tail_end(path, len(data)) is None
