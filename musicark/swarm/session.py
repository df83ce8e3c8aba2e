"""A libtorrent session set up the way musicark seeds and checks: quiet, explicit, local.

DHT, local service discovery, UPnP and NAT-PMP stay off unless asked for: a seeder
announces to the release's trackers from the address it was told to listen on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libtorrent as lt

from musicark.errors import UsageError


@dataclass(frozen=True, slots=True)
class SessionOptions:
    listen: str = "127.0.0.1:6881"
    dht: bool = False
    lsd: bool = False
    upnp: bool = False
    natpmp: bool = False
    upload_limit: int = 0  # bytes/s, 0 = unlimited
    hashing_threads: int = 0  # 0 = one per core


def parse_listen(text: str) -> tuple[str, int]:
    """`'127.0.0.1:6881'`, `'[::1]:6881'`, `':6881'` -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"listen address {text!r} is not HOST:PORT (try 127.0.0.1:6881)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def listen_interfaces(text: str) -> str:
    host, port = parse_listen(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def session_settings(options: SessionOptions) -> dict[str, Any]:
    import os

    cat = lt.alert_category
    return {
        "listen_interfaces": listen_interfaces(options.listen),
        # listen where told or fail: never fall back to some other port
        "listen_system_port_fallback": False,
        "max_retry_port_bind": 0,
        "enable_dht": options.dht,
        "enable_lsd": options.lsd,
        "enable_upnp": options.upnp,
        "enable_natpmp": options.natpmp,
        "alert_mask": int(cat.error | cat.status | cat.storage | cat.tracker),
        "alert_queue_size": 100_000,  # thousands of torrents checked at start: keep every alert
        # peers behind one NAT (or several clients on one host) share an address
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "upload_rate_limit": options.upload_limit,
        "hashing_threads": options.hashing_threads or (os.cpu_count() or 1),
        "user_agent": "musicark",
        "auto_manage_startup": 5,
        "active_seeds": -1,
        "active_limit": -1,
        "dont_count_slow_torrents": True,
    }


def open_session(options: SessionOptions) -> Any:
    """A started `lt.session` with `options` applied."""
    make: Any = lt.session  # the stubs miss the settings-dict constructor
    return make(session_settings(options))
