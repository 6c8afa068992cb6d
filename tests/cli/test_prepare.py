"""``rlhf-zoo prepare``: what the command line asks is what gets built (the builders are stand-ins here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf_zoo import cli


@pytest.fixture
def builders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Stand-ins for the data, SmolLM2, zoo-lm and gold builders, recording (what, force) per call."""
    import rlhf_zoo.data.hutto as hutto
    import rlhf_zoo.policies.models as models
    import rlhf_zoo.policies.zoo_lm as zoo_lm
    import rlhf_zoo.rewards.minilm as minilm
    import rlhf_zoo.rewards.minilm_build as minilm_build

    calls: list[tuple[str, bool]] = []
    monkeypatch.setenv("RLHF_ZOO_CACHE", str(tmp_path / "cache"))  # the build locks' files go there
    smollm2 = tmp_path / "smollm2"
    smollm2.mkdir()
    (smollm2 / "config.json").write_text("{}")  # already converted

    def convert(target: Path | None = None) -> Path:
        calls.append(("smollm2", False))
        return smollm2

    def build_lm(force: bool = False, progress: bool = True, **kw) -> Path:
        calls.append(("zoo-lm", force))
        return tmp_path / "lm"

    def build_gold(force: bool = False, progress: bool = True, **kw) -> Path:
        calls.append(("gold", force))
        return tmp_path / "gold"

    monkeypatch.setattr(hutto, "load_hutto", lambda **kw: [])
    monkeypatch.setattr(hutto, "cache_path", lambda: tmp_path / "hutto.jsonl")
    monkeypatch.setattr(models, "convert_smollm2", convert)
    monkeypatch.setattr(models, "smollm2_cache_path", lambda: smollm2)
    monkeypatch.setattr(zoo_lm, "build_zoo_lm", build_lm)
    lm_meta = {"heldout_perplexity": 9.0, "n_parameters": 1, "seconds": {"total": 1.0}}
    monkeypatch.setattr(zoo_lm, "read_meta", lambda path=None: lm_meta)
    monkeypatch.setattr(minilm_build, "build_minilm_sentiment", build_gold)
    gold_meta = {"pearson_r": 0.8, "n_heldout": 1, "n_train": 1, "train_seconds": 1.0}
    monkeypatch.setattr(minilm, "read_meta", lambda path=None: gold_meta)
    return calls


def test_prepare_force_rebuilds(builders: list[tuple[str, bool]], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["prepare", "force=true"]) == 0
    assert ("zoo-lm", True) in builders and ("gold", True) in builders
    assert "converting" not in capsys.readouterr().out  # SmolLM2 was already converted: nothing is redone


def test_prepare_plain_builds_what_is_missing(builders: list[tuple[str, bool]]) -> None:
    assert cli.main(["prepare"]) == 0
    assert ("zoo-lm", False) in builders and ("gold", False) in builders


@pytest.mark.parametrize("arg", ["forse=true", "force", "force=maybe", "force="])
def test_prepare_refuses_what_it_does_not_know(
    arg: str, builders: list[tuple[str, bool]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["prepare", arg]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "prepare" in err
    assert builders == []  # nothing was built


def _prepare_beside_another_build(builders: list[tuple[str, bool]], zoo_lm: bool) -> int:
    """``rlhf-zoo prepare`` while another process (a thread here) holds the gold model's build lock, and zoo-lm's
    too if ``zoo_lm``, for half a second; the index in ``builders`` at which that other build ended."""
    import threading
    import time
    from contextlib import ExitStack

    from rlhf_zoo.io import build_lock
    from rlhf_zoo.policies.zoo_lm import ZOO_LM, zoo_lm_path
    from rlhf_zoo.rewards.minilm import GOLD_NAME, default_path

    holding = threading.Event()

    def other_build() -> None:
        with ExitStack() as locks:
            if zoo_lm:
                locks.enter_context(build_lock(zoo_lm_path(), ZOO_LM))
            locks.enter_context(build_lock(default_path(), GOLD_NAME))
            holding.set()
            time.sleep(0.5)
            builders.append(("other build done", False))

    other = threading.Thread(target=other_build)
    other.start()
    holding.wait()
    assert cli.main(["prepare"]) == 0
    other.join()
    return builders.index(("other build done", False))


def test_prepare_waits_for_a_build_in_progress(builders: list[tuple[str, bool]]) -> None:
    """While another process builds zoo-lm and the gold model (a bench worker that found them missing holds
    their build locks), ``prepare`` waits for that build instead of starting its own beside it."""
    done = _prepare_beside_another_build(builders, zoo_lm=True)
    assert done < builders.index(("zoo-lm", False)) and done < builders.index(("gold", False))


def test_prepare_waits_for_the_gold_models_build_alone(builders: list[tuple[str, bool]]) -> None:
    """Another process building only the gold model (its build lock alone held): ``prepare`` builds zoo-lm,
    but waits for that build before its own of the gold model."""
    assert _prepare_beside_another_build(builders, zoo_lm=False) < builders.index(("gold", False))


def test_prepare_tells_what_it_built_and_where(builders, tmp_path, monkeypatch, capsys) -> None:
    """One line per built thing with its figure (zoo-lm's perplexity, the gold model's Pearson r) and its folder,
    and the same figures returned; the data download shows its progress."""
    import rlhf_zoo.data.hutto as hutto
    from rlhf_zoo.prepare import prepare

    verbose: list[bool] = []

    def load_hutto(verbose_: bool = True, **kw) -> list[dict[str, str]]:
        verbose.append(verbose_)
        return [{"text": "good"}] * 3

    monkeypatch.setattr(hutto, "load_hutto", lambda verbose=True, **kw: load_hutto(verbose))
    got = prepare()
    out = capsys.readouterr().out.splitlines()
    assert verbose == [True]
    assert out == [
        f"data: 3 human-labelled texts (Hutto & Gilbert 2014) in {tmp_path / 'hutto.jsonl'}",
        f"policy smollm2-135m: {tmp_path / 'smollm2'}",
        f"policy zoo-lm: held-out perplexity 9.0 (0.0 M parameters, built in 1 s) in {tmp_path / 'lm'}",
        "gold reward minilm_sentiment: Pearson r = 0.800 on 1 held-out human ratings (trained on 1 in 1 s) in "
        f"{tmp_path / 'gold'}",
    ]
    assert (got["n_texts"], got["zoo_lm_perplexity"], got["pearson_r"]) == (3, 9.0, 0.8)
    assert (got["zoo-lm"], got["minilm_sentiment"]) == (str(tmp_path / "lm"), str(tmp_path / "gold"))
