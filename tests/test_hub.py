"""condgan_lib.hub: shipped checkpoints load through their manifest, and every way a file can be bad is reported."""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import condgan_lib
from condgan_lib import hub
from condgan_lib.models import Generator


@pytest.fixture
def shipped(tmp_path):
    """A checkpoint folder with one small conditional generator and its manifest entry."""
    torch.manual_seed(0)
    model = Generator(z_dim=8, n_classes=10, ch=4)
    hub.atomic_save(hub.model_payload(model, {"z_dim": 8, "n_classes": 10, "ch": 4}, "tiny"), tmp_path / "tiny.pt")
    entry = {"file": "tiny.pt", "sha256": hub.sha256_of(tmp_path / "tiny.pt"),
             "command": "python -m condgan_lib.train --config tiny --ship"}
    (tmp_path / hub.MANIFEST).write_text(json.dumps({"tiny": entry}))
    return tmp_path, model


def test_round_trip_gives_the_same_images(shipped):
    folder, model = shipped
    loaded = hub.load_pretrained("tiny", directory=folder)
    labels = torch.tensor([0, 3, 9])
    assert torch.equal(loaded.generate(labels, seed=1), model.eval().generate(labels, seed=1))


def test_unknown_name_lists_the_known_names(shipped):
    folder, _ = shipped
    with pytest.raises(ValueError, match="known names: tiny"):
        hub.load_pretrained("tinny", directory=folder)


def test_missing_file_says_how_to_recreate_it(shipped):
    folder, _ = shipped
    (folder / "tiny.pt").unlink()
    with pytest.raises(hub.CheckpointError, match="missing.*--config tiny"):
        hub.load_pretrained("tiny", directory=folder)


def test_truncated_file_is_caught_by_its_checksum(shipped):
    folder, _ = shipped
    data = (folder / "tiny.pt").read_bytes()
    (folder / "tiny.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(hub.CheckpointError, match="corrupt or stale"):
        hub.load_pretrained("tiny", directory=folder)


def test_unreadable_file_with_matching_checksum_is_reported(shipped):
    folder, _ = shipped
    (folder / "tiny.pt").write_bytes(b"not a checkpoint")
    manifest = json.loads((folder / hub.MANIFEST).read_text())
    manifest["tiny"]["sha256"] = hub.sha256_of(folder / "tiny.pt")
    (folder / hub.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(hub.CheckpointError, match="cannot be read"):
        hub.load_pretrained("tiny", directory=folder)


def test_atomic_save_leaves_no_partial_file_on_failure(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    (tmp_path / "x.pt").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        hub.atomic_save({"bad": Unpicklable()}, tmp_path / "x.pt")
    assert (tmp_path / "x.pt").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_every_shipped_checkpoint_matches_its_manifest():
    manifest = hub.read_manifest()
    assert manifest, "the package ships no checkpoints"
    for name, entry in manifest.items():
        assert hub.sha256_of(hub.CHECKPOINT_DIR / entry["file"]) == entry["sha256"], name
        for key in ("command", "config", "steps", "wall_time_s", "hardware", "metrics", "created"):
            assert key in entry, f"{name}: manifest entry lacks {key!r}"
        assert entry["command"].startswith("python -m condgan_lib.train --config " + entry["config"]["name"]), name
        model = condgan_lib.load_pretrained(name)
        assert not model.training


ROOT = Path(__file__).resolve().parents[1]

def test_every_manifest_command_is_one_a_reader_can_run_in_a_fresh_clone():
    """No private run folder, no --resume from a folder a reader does not have; the segments keep what was run."""
    for name, entry in hub.read_manifest().items():
        words = shlex.split(entry["command"])
        assert words[:5] == ["python", "-m", "condgan_lib.train", "--config", entry["config"]["name"]], name
        assert "--out" not in words and "--resume" not in words and "--ship" in words, (name, entry["command"])
        for segment in entry.get("segments", []):
            assert shlex.split(segment["command"])[:5] == words[:5], name


def test_every_shipped_file_names_a_clean_commit_on_main():
    """The commit that trained each file, so that its command re-creates it (scripts/reproduce.py)."""
    manifest = hub.read_manifest()
    modified = sorted(name for name, e in manifest.items() if not re.fullmatch(r"[0-9a-f]{12}", e.get("commit") or ""))
    assert not modified, f"trained from a modified tree (or without a commit); retrain from a clean commit: {modified}"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name, entry in manifest.items():
        on_main = subprocess.run(["git", "merge-base", "--is-ancestor", entry["commit"], "HEAD"], cwd=ROOT)
        assert on_main.returncode == 0, f"{name}: commit {entry['commit']} is not in this branch's history"


def test_the_reproduce_script_keeps_the_command_and_drops_the_run_folder():
    sys.path.insert(0, str(ROOT / "scripts"))
    import reproduce
    assert reproduce.canonical_command("python -m condgan_lib.train --config a --out /tmp/x --resume --ship "
                                       "--threads 1") == "python -m condgan_lib.train --config a --ship --threads 1"
    assert reproduce.canonical_command("python -m condgan_lib.train --config a") == \
        "python -m condgan_lib.train --config a --ship"


def test_train_or_load_loads_a_shipped_model(capsys):
    model = condgan_lib.train_or_load("mnist-classifier")
    assert "loaded shipped checkpoint" in capsys.readouterr().out
    assert model.head.out_features == 10


def _write_entries(directory: str, prefix: str, n: int) -> None:
    for i in range(n):
        hub.write_manifest_entry(f"{prefix}-{i}", {"file": f"{prefix}-{i}.pt"}, directory)


def test_concurrent_manifest_writers_lose_no_entry(tmp_path):
    """Two runs that ship at the same time each read, extend and rewrite the manifest: the lock keeps both."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_entries, args=(str(tmp_path), f"run{w}", 40)) for w in range(3)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in writers)
    assert len(hub.read_manifest(tmp_path)) == 3 * 40


def test_every_shipped_file_describes_itself():
    for name, entry in hub.read_manifest().items():
        payload = torch.load(hub.CHECKPOINT_DIR / entry["file"], map_location="cpu", weights_only=True)
        assert payload["format"] == hub.PAYLOAD_FORMAT and payload["family"] == entry["family"], name
        assert payload["kind"] == entry["kind"], name
        assert ("vocab" in payload) == (entry["family"] in ("clip", "text-gan")), name


def _text_model_folder(tmp_path, vocab):
    from condgan_lib import clip, text
    model = clip.CLIPModel(len(text.VOCAB), embed_dim=8, ch=4, text_dim=8)
    kwargs = {"vocab_size": len(text.VOCAB), "embed_dim": 8, "ch": 4, "text_dim": 8}
    payload = {**hub.model_payload(model, kwargs, "tinyclip"), "vocab": vocab}
    hub.atomic_save(payload, tmp_path / "tinyclip.pt")
    hub.write_manifest_entry("tinyclip", {"file": "tinyclip.pt", "sha256": hub.sha256_of(tmp_path / "tinyclip.pt")},
                             tmp_path)
    return text.VOCAB.words


def test_a_text_model_refuses_another_vocabulary_and_names_the_difference(tmp_path):
    from condgan_lib import text
    words = list(text.VOCAB.words)
    _text_model_folder(tmp_path, words[:-1] + ["zebra"])
    with pytest.raises(hub.CheckpointError, match=rf"another vocabulary.*added \['{words[-1]}'\].*removed \['zebra'\]"):
        hub.load_pretrained("tinyclip", directory=tmp_path)
    _text_model_folder(tmp_path, words)
    assert hub.load_pretrained("tinyclip", directory=tmp_path).embed_dim == 8


def test_a_file_of_the_old_format_loads_and_is_upgraded_with_its_old_checksum_recorded(tmp_path):
    torch.manual_seed(0)
    model = Generator(z_dim=8, n_classes=10, ch=4)
    old = {"name": "tiny", "kind": "Generator", "kwargs": {"z_dim": 8, "n_classes": 10, "ch": 4},
           "state_dict": model.state_dict()}                       # as files were written before format 1
    hub.atomic_save(old, tmp_path / "tiny.pt")
    before = hub.sha256_of(tmp_path / "tiny.pt")
    hub.write_manifest_entry("tiny", {"file": "tiny.pt", "kind": "Generator", "sha256": before}, tmp_path)
    labels = torch.tensor([1, 2])
    images = hub.load_pretrained("tiny", directory=tmp_path).generate(labels, seed=0)
    assert hub.upgrade_payload("tiny", tmp_path) is True
    entry = hub.read_manifest(tmp_path)["tiny"]
    assert entry["sha256_before_format_upgrade"] == before != entry["sha256"] and entry["family"] == "gan"
    assert torch.equal(hub.load_pretrained("tiny", directory=tmp_path).generate(labels, seed=0), images)
    assert hub.upgrade_payload("tiny", tmp_path) is False


def test_a_truncated_manifest_names_its_file(tmp_path):
    (tmp_path / hub.MANIFEST).write_text('{"tiny": {"file": ')
    with pytest.raises(hub.CheckpointError, match=rf"{hub.MANIFEST} is not valid JSON"):
        hub.read_manifest(tmp_path)
