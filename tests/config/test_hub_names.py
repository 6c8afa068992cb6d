"""What a model or dataset name means (rlhf_zoo/hub.py): a folder on this machine or a hub id, what a loader is
handed for it, when a hub id counts as cached, and what the refusals say. Each test was written against a mutant of
hub.py that every earlier test let through."""

from __future__ import annotations

import pytest

from rlhf_zoo import hub
from rlhf_zoo.errors import UserError

huggingface_hub = pytest.importorskip("huggingface_hub")


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("HuggingFaceTB/SmolLM2-135M", False),  # owner/name
        ("gpt2", False),  # name
        ("./models/m", True),
        ("../m", True),
        ("/srv/models/m", True),
        ("~/m", True),  # the shell leaves the ~ of model.name=~/m
        ("models/m/final", True),  # deeper than owner/name: no hub id
    ],
)
def test_a_name_that_does_not_exist_is_a_folder_by_its_form(name, local):
    assert hub.is_local_path(name) is local


def test_a_folder_here_wins_over_the_hub_id_it_looks_like(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "m").mkdir(parents=True)
    assert hub.is_local_path("owner/m") and not hub.is_local_path("owner/other")
    assert hub.local_or_hub("owner/m") == "owner/m"


def test_a_loader_gets_the_folder_with_its_tilde_expanded_and_a_hub_id_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m").mkdir()
    assert hub.local_or_hub("~/m") == str(tmp_path / "m")
    assert hub.local_or_hub("~/missing") == "~/missing"
    assert hub.local_or_hub("owner/name") == "owner/name"


def _cache(root, repo: str, files: list[str]) -> None:
    """A hub cache holding ``files`` of ``repo``'s main revision, laid out as the hub client writes it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    for f in files:
        (folder / "snapshots" / "abc123" / f).write_text("{}")


def test_a_hub_model_counts_as_cached_by_its_config_and_not_by_a_record_of_its_absence(tmp_path, monkeypatch):
    """Offline, a model whose config.json is in the hub cache is accepted; one that the cache records as having
    no config.json (the client's "does not exist" marker) or holds other files only is refused in one line."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "model_info", lambda *a, **k: pytest.fail("asked the hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _cache(tmp_path, "a/cached", ["config.json", "model.safetensors"])
    _cache(tmp_path, "a/weights", ["model.safetensors"])
    _cache(tmp_path, "a/absent", [])
    (tmp_path / "models--a--absent" / ".no_exist" / "abc123").mkdir(parents=True)
    (tmp_path / "models--a--absent" / ".no_exist" / "abc123" / "config.json").write_text("")
    hub.check_hub_model("a/cached")
    for name in ("a/weights", "a/absent"):
        with pytest.raises(UserError, match=f"^model.name={name} is not in the local Hugging Face cache"):
            hub.check_hub_model(name)


def test_a_name_that_is_no_folder_and_no_hub_id_says_both_and_why():
    with pytest.raises(UserError, match=r"^model.name=a b:c: no such directory, and not a hub id \(.+\)$"):
        hub.check_hub_model("a b:c")


def test_the_hubs_refusal_is_its_first_line(monkeypatch):
    def refuse(name, timeout=None):
        raise RuntimeError("404 Client Error: Repository Not Found for url\nRequest ID: 123")

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda name, f: None)
    monkeypatch.setattr(huggingface_hub, "model_info", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(UserError) as e:
        hub.check_hub_model("a/gone")
    assert "cannot provide it (404 Client Error: Repository Not Found for url)" in str(e.value)
    assert "Request ID" not in str(e.value)


def test_quiet_transformers_leaves_disabled_bars_disabled():
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with hub.quiet_transformers():
            pass
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def test_a_mistyped_path_below_a_folder_here_says_so_before_the_hubs_answer(tmp_path, monkeypatch):
    """``hf:rm/nope`` beside a folder ``rm`` (a typo of ``rm/cls``) got only the hub's "cannot provide it", never a
    word of the local folder meant; offline, only "not in the local Hugging Face cache"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rm" / "cls").mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda name, f: None)

    def down(name, timeout=None):
        raise OSError("down")

    monkeypatch.setattr(huggingface_hub, "model_info", down)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(UserError) as e:
        hub.check_hub_model("rm/nope")
    assert "no nope in the folder rm here (it holds cls), and the Hugging Face hub cannot provide it" in str(e.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"HF_HUB_OFFLINE is set; no nope in the folder rm here \(it holds cls\):"):
        hub.check_hub_model("rm/nope")
    monkeypatch.chdir(tmp_path / "rm")  # a hub id whose first part is no folder here: as before
    with pytest.raises(UserError) as e:
        hub.check_hub_model("rm/nope")
    assert "in the folder" not in str(e.value)
