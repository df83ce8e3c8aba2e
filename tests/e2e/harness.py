"""Real BitTorrent parts on 127.0.0.1 for end-to-end tests: opentracker, aria2c, qbittorrent-nox.

Every process gets free ports, its own folder, a time bound, and is stopped (then
killed if it lingers) by its own process id.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.net import free_port as free_port  # re-exported for the e2e tests


def need(*programs: str) -> None:
    """Skip the test when a program it runs is not installed."""
    import pytest

    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (see Makefile DEBIAN_PACKAGES)")


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`: only this process, by its id."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


class Opentracker:
    """opentracker in whitelist mode, as nobody, chrooted to a world-readable folder."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "opentracker"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.whitelist = self.dir / "whitelist.txt"
        self.whitelist.write_text("")
        self.whitelist.chmod(0o644)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._hashes: list[str] = []

    @property
    def announce(self) -> str:
        return f"http://127.0.0.1:{self.port}/announce"

    @property
    def scrape(self) -> str:
        return f"http://127.0.0.1:{self.port}/scrape"

    def allow(self, *infohashes: str) -> None:
        """Add v1 infohashes to the whitelist (reloaded with SIGHUP when running)."""
        self._hashes.extend(h.lower() for h in infohashes)
        tmp = self.dir / "whitelist.tmp"
        tmp.write_text("".join(f"{h}\n" for h in self._hashes))
        tmp.chmod(0o644)
        tmp.replace(self.whitelist)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)

    def start(self) -> Opentracker:
        argv = ["opentracker", "-i", "127.0.0.1", "-p", str(self.port), "-P", str(self.port)]
        argv += ["-d", str(self.dir), "-u", "nobody", "-w", "whitelist.txt"]
        self.log = (self.dir.parent / "opentracker.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port), timeout=10, what="opentracker")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.log.close()


class Aria2:
    """aria2c downloading one (v1) torrent from the swarm, then exiting."""

    def __init__(self, workdir: Path) -> None:
        need("aria2c")
        self.dir = workdir / "aria2"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()

    def download(
        self, torrent: Path, dest: Path, *, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [
            "aria2c",
            "--no-conf",
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--seed-time=0",
            "--check-integrity=true",
            "--file-allocation=none",
            "--summary-interval=0",
            "--console-log-level=warn",
            f"--listen-port={self.port}",
            "--interface=127.0.0.1",
            "--disable-ipv6=true",
            f"--bt-stop-timeout={int(timeout)}",
            f"--dir={dest}",
            f"--log={self.dir / 'aria2.log'}",
            "--log-level=info",
            str(torrent),
        ]
        return subprocess.run(argv, capture_output=True, timeout=timeout + 10, check=False)


QBT_CONFIG = """\
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\Port={port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\AnnounceToAllTrackers=true
Session\\AnnounceToAllTiers=true
Session\\MultiConnectionsPerIp=true
Session\\DefaultSavePath={save}
Session\\TempPathEnabled=false
Session\\AddTorrentPaused=false
Session\\QueueingSystemEnabled=false
Session\\IgnoreLimitsOnLAN=true

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\UPnP=false
Connection\\PortRangeMin={port}
Connection\\Interface=lo
Connection\\InterfaceName=lo
Connection\\InterfaceAddress=127.0.0.1
Bittorrent\\DHT=false
Bittorrent\\LSD=false
Bittorrent\\PeX=false
Downloads\\SavePath={save}
General\\Locale=en
WebUI\\Enabled=true
WebUI\\Address=127.0.0.1
WebUI\\Port={webui}
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\ClickjackingProtection=false
"""


class QBittorrent:
    """qbittorrent-nox with its own profile, listening and serving its WebUI on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "qbittorrent"
        self.save = self.dir / "downloads"
        self.save.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.webui = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        config = self.dir / "profile" / "qBittorrent" / "config" / "qBittorrent.conf"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(QBT_CONFIG.format(port=self.port, webui=self.webui, save=self.save))
        self.api = f"http://127.0.0.1:{self.webui}/api/v2"

    def start(self) -> QBittorrent:
        if shutil.which("qbittorrent-nox") is None:
            raise RuntimeError("qbittorrent-nox is not installed")
        env = {**os.environ, "HOME": str(self.dir), "XDG_CONFIG_HOME": str(self.dir / "xdg")}
        argv = [
            "qbittorrent-nox",
            f"--profile={self.dir / 'profile'}",
            f"--webui-port={self.webui}",
            f"--torrenting-port={self.port}",
        ]
        self.log = (self.dir / "qbittorrent.log").open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        wait_for(self._api_up, timeout=20, what="qbittorrent-nox WebUI")
        return self

    def _api_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"qbittorrent-nox exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.api}/app/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def add(self, torrent: Path, save_path: Path) -> None:
        with torrent.open("rb") as fh:
            r = httpx.post(
                f"{self.api}/torrents/add",
                files={"torrents": (torrent.name, fh, "application/x-bittorrent")},
                data={"savepath": str(save_path), "paused": "false", "root_folder": "true"},
                timeout=10,
            )
        r.raise_for_status()
        if r.text.strip() != "Ok.":
            raise RuntimeError(f"qbittorrent-nox refused the torrent: {r.text!r}")

    def torrents(self) -> list[dict[str, object]]:
        r = httpx.get(f"{self.api}/torrents/info", timeout=5)
        r.raise_for_status()
        return list(r.json())

    def wait_complete(self, *, count: int = 1, timeout: float = 60) -> list[dict[str, object]]:
        done: list[dict[str, object]] = []

        def check() -> bool:
            nonlocal done
            items = self.torrents()
            done = [t for t in items if float(str(t.get("progress", 0))) >= 1.0]
            return len(done) >= count

        wait_for(check, timeout=timeout, what="qbittorrent-nox to finish", step=0.5)
        return done

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            httpx.post(f"{self.api}/app/shutdown", timeout=2)
            self.proc.wait(5)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            pass
        stop_process(self.proc)
        self.log.close()


def make_release(root: Path, *, files: int, size: int, seed: int = 11) -> Path:
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"Artist {i % 3}" / f"{i:03d} Track.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size + rng.randrange(size)))
    return root


class SeedProcess:
    """`musicark seed` as its own process, as a user runs it; stderr is collected as it
    comes (the status lines), stdout at the end."""

    def __init__(self, archive: Path, *args: str | Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "musicark", "seed", "--listen", f"127.0.0.1:{self.port}"]
        argv += [str(a) for a in args]
        env = {**os.environ, "MUSICARK_ARCHIVE": str(archive)}
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_seeding(self, timeout: float = 30) -> None:
        """Until the first status line: the session runs and Ctrl-C/SIGTERM are handled."""

        def started() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"musicark seed exited: {''.join(self.err)}")
            return any(line.startswith("[") for line in self.err)

        wait_for(started, timeout=timeout, what="musicark seed to start")

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30) -> tuple[int, str, str]:
        """Send `sig` once, wait for a clean exit (kill after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self._reader.join(5)
        return self.proc.returncode, out, "".join(self.err)
