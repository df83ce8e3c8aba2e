"""The generic registry: names, duplicates, and plugins found through entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from musicark.registry import Registry, RegistryError


class Greeter:
    def __init__(self, word: str) -> None:
        self.word = word


def test_register_get_names_keep_order() -> None:
    reg: Registry[Greeter] = Registry("greeter")
    reg.register("b", Greeter("bonjour"))
    reg.register("a", Greeter("hallo"))
    assert reg.names() == ("b", "a")
    assert reg.get("a").word == "hallo"
    assert "b" in reg and "c" not in reg
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", Greeter("hi"))
    reg.register("a", Greeter("hi"), replace=True)
    assert reg.get("a").word == "hi"
    with pytest.raises(RegistryError, match=r"unknown greeter 'zz' \(one of: b, a\)"):
        reg.get("zz")


def test_check_refuses_objects_off_protocol() -> None:
    reg: Registry[Greeter] = Registry("greeter", check=lambda o: isinstance(o, Greeter))
    with pytest.raises(RegistryError, match="does not follow"):
        reg.register("x", "not a greeter")  # type: ignore[arg-type]


def _install_plugin(root: Path, group: str, body: str, entry: str) -> None:
    """A real installed distribution: a module plus dist-info with entry_points.txt."""
    (root / "toyplugin_mod.py").write_text(body)
    info = root / "toyplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")


def test_entry_points_register_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(
        tmp_path,
        "musicark.test_greeters",
        "class Greeter:\n    def __init__(self, word):\n        self.word = word\n"
        "HOLA = Greeter('hola')\n"
        "def make():\n    return Greeter('ciao')\n",
        "hola = toyplugin_mod:HOLA\nciao = toyplugin_mod:make",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[Greeter] = Registry("greeter", check=lambda o: hasattr(o, "word"))
    assert sorted(reg.load_entry_points("musicark.test_greeters")) == ["ciao", "hola"]
    assert reg.get("hola").word == "hola"
    assert reg.get("ciao").word == "ciao"  # a factory is called
    assert reg.load_entry_points("musicark.test_greeters") == []  # loaded once
    sys.modules.pop("toyplugin_mod", None)


def test_broken_plugin_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_plugin(
        tmp_path, "musicark.test_broken", "raise ImportError('boom')\n", "bad = toyplugin_mod:X"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("thing")
    with pytest.raises(RegistryError, match=r"thing plugin 'bad' .* cannot be loaded: boom"):
        reg.load_entry_points("musicark.test_broken")
    sys.modules.pop("toyplugin_mod", None)
