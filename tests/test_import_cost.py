"""What a command loads is part of its cost: an ingest of a few files is mostly start-up.

Guards against heavy modules creeping into the ingest path, and against a built-in
follower that `events.send` would not load for the event it follows."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

from musicark import events

ROOT = Path(__file__).resolve().parents[1]


def test_every_built_in_follower_is_listed_under_its_event() -> None:
    for modules in events.FOLLOWERS.values():
        for name in modules:
            import_module(name)
    for event, listeners in events._listeners.items():
        for fn in listeners:
            package = fn.__module__
            if package.startswith("musicark."):
                assert any(
                    package == m or package.startswith(m + ".") for m in events.FOLLOWERS[event]
                ), f"{package} follows {event} but is not in events.FOLLOWERS[{event!r}]"


def test_ingest_without_fingerprints_loads_no_arrow_search_index_or_chromaprint(
    tmp_path: Path,
) -> None:
    music = tmp_path / "in"
    music.mkdir()
    (music / "x.txt").write_text("not audio")
    code = (
        "import sys\n"
        "from pathlib import Path\nfrom musicark.archive import init_archive\n"
        "from musicark.store.ingest import ingest\n"
        f"archive = init_archive(Path({str(tmp_path / 'a')!r}))\n"
        f"ingest(archive, [{str(music)!r}], jobs=1, fingerprint=False)\n"
        "loaded = sorted(m for m in ('pyarrow', 'musicark.search', 'tantivy', 'chromaprint') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
