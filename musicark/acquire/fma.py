"""`fma:PATH`: the Free Music Archive dataset, audio by track id.

PATH is the dataset folder: `tracks.csv` (at the top or in `fma_metadata/`) with its
two-level header (a group row — album, artist, set, track — then the field row, then
pandas' index-name row `track_id`), and the audio laid out by track id,
`000/000002.mp3`, in `fma_full/`, `fma_large/`, `fma_medium/`, `fma_small/` or `audio/`,
or still inside the dataset's zip (`fma_small.zip`, ...; members are read straight into
staging, their CRC checked by `zipfile`).
Each track's `track/license` sets `rights`; titles, artists and the FMA id (external id
kind `fma`) tie offers to catalogue tracks.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

from musicark.acquire.http import Downloader, Transfer
from musicark.acquire.model import FetchFailed, Offer
from musicark.acquire.sources import BaseSource, SourceContext, register, walk_audio
from musicark.catalog.formats.fma import read_tracks
from musicark.catalog.licences import licence_rights
from musicark.errors import UsageError

AUDIO_FOLDERS = ("fma_full", "fma_large", "fma_medium", "fma_small", "audio", ".")


def audio_path(root: Path, track_id: int) -> Path:
    return root / f"{track_id // 1000:03d}" / f"{track_id:06d}.mp3"


@register
class FmaSource(BaseSource):
    name = "fma"
    needs = "PATH: the Free Music Archive dataset folder (tracks.csv and 000/000002.mp3 audio)"
    summary = "the Free Music Archive dataset; per-track licence -> rights"

    def __init__(self, argument: str, *, context: SourceContext) -> None:
        super().__init__(argument, context=context)
        root = Path(argument)
        candidates = [root / "tracks.csv", root / "fma_metadata" / "tracks.csv"]
        self.tracks_csv = next((c for c in candidates if c.is_file()), None)
        if self.tracks_csv is None:
            raise UsageError(f"fma: no tracks.csv in {argument} (or its fma_metadata/)")
        self.audio = next(
            (root / d for d in AUDIO_FOLDERS if (root / d).is_dir() and _has_audio(root / d)),
            None,
        )
        self.zip = next(iter(sorted(root.glob("fma_*.zip"))), None) if self.audio is None else None
        if self.audio is None and self.zip is None:
            raise UsageError(f"fma: no audio folder (000/000002.mp3 ...) or zip in {argument}")

    def shared_files(self) -> list[Path]:
        if self.zip is not None:
            return [self.zip]
        first = next(walk_audio(self.audio), None) if self.audio is not None else None
        return [first] if first is not None else []

    def offers(self) -> Iterator[Offer]:
        assert self.tracks_csv is not None
        members = self._members()
        for tid, row in read_tracks(self.tracks_csv):
            if members is not None:
                name = f"{tid // 1000:03d}/{tid:06d}.mp3"
                info = members.get(name)
                if info is None:
                    continue
                where, size = f"{self.zip}!{info.filename}", info.file_size
            else:
                assert self.audio is not None
                path = audio_path(self.audio, tid)
                try:
                    size = path.stat().st_size
                except OSError:
                    continue  # the subsets hold only some of the tracks
                where = str(path)
            licence = row.get("track/license") or None
            yield Offer(
                source=self.name,
                key=f"track/{tid}",
                path=where,
                size=size,
                licence=licence,
                rights=licence_rights(licence),
                external=("fma", str(tid)),
                title=row.get("track/title") or None,
                artist=row.get("artist/name") or None,
                duration_ms=_seconds_ms(row.get("track/duration")),
                suffix=".mp3",
            )

    def _members(self) -> dict[str, zipfile.ZipInfo] | None:
        if self.zip is None:
            return None
        try:
            with zipfile.ZipFile(self.zip) as z:
                return {"/".join(i.filename.split("/")[-2:]): i for i in z.infolist()}
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError(f"fma: cannot read {self.zip}: {exc}") from exc

    def fetch(self, offer: Offer, part: Path, downloader: Downloader) -> Transfer:
        if self.zip is None or offer.path is None or "!" not in offer.path:
            return super().fetch(offer, part, downloader)
        member = offer.path.split("!", 1)[1]
        try:
            with zipfile.ZipFile(self.zip) as z, z.open(member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise FetchFailed("error_not_available", f"{member} is not in {self.zip}") from None
        except zipfile.BadZipFile as exc:  # a CRC mismatch, among others
            raise FetchFailed("error_checksum", f"{member}: {exc}") from exc
        except OSError as exc:
            raise FetchFailed("error_io", f"cannot read {self.zip}: {exc.strerror or exc}") from exc
        return Transfer(part.stat().st_size, None, None, offer.path, False)


def _seconds_ms(value: str | None) -> int | None:
    try:
        return int(float(value) * 1000) if value else None
    except ValueError:
        return None


def _has_audio(folder: Path) -> bool:
    return any(p.is_dir() and len(p.name) == 3 and p.name.isdigit() for p in folder.iterdir())
