"""Where built models and data go (README, docs/architecture.md): $RLHF_ZOO_CACHE, else
$XDG_CACHE_HOME/rlhf_zoo, else ~/.cache/rlhf_zoo."""

from pathlib import Path

from rlhf_zoo.paths import cache_dir, cache_root


def test_the_cache_folder_is_chosen_in_the_documented_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RLHF_ZOO_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "rlhf_zoo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "rlhf_zoo"
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.setenv("RLHF_ZOO_CACHE", "")  # empty: as if unset
    assert cache_root() == tmp_path / "xdg" / "rlhf_zoo"


def test_cache_dir_creates_its_folder_below_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "c"))
    path = cache_dir("models", "x")
    assert path == Path(tmp_path / "c" / "models" / "x") and path.is_dir()
