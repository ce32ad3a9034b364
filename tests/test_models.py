import hashlib
import io

import pytest
import torch

from samprompt import REGISTRY, CheckpointError, DownloadError, build_sam, load_model
from samprompt.models import TINY_ARCH, detect_architecture, download, model_id, save_safetensors, weights_path


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h", "tiny"])
def test_detect_architecture_of_every_registry_model(name):
    arch = REGISTRY[name].arch
    with torch.device("meta"):  # shapes only: no memory for vit_h
        sam = build_sam(arch)
    assert detect_architecture(sam.state_dict()) == arch


def test_official_entries_have_url_and_sha256():
    for name in ("vit_b", "vit_l", "vit_h"):
        spec = REGISTRY[name]
        assert spec.url.startswith("https://") and spec.url.endswith(".pth")
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


@pytest.fixture()
def saved(tmp_path, random_sam):
    pth = tmp_path / "m.pth"
    torch.save(random_sam.state_dict(), pth)
    st = save_safetensors(random_sam, tmp_path / "m.safetensors")
    return pth, st


def test_load_pth_and_safetensors_round_trip(saved, random_sam):
    for path in saved:
        m = load_model(path)
        for k, v in random_sam.state_dict().items():
            assert torch.equal(m.state_dict()[k], v), k
        assert m.samprompt_id.startswith("m:")


def test_refuses_other_architecture(saved):
    with pytest.raises(CheckpointError, match="not the 'vit_b' architecture"):
        load_model(saved[0], expect="vit_b")


def test_refuses_corrupt_and_unsafe_files(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(bad)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError):
        load_model(evil)  # weights_only=True refuses to unpickle objects
    not_sam = tmp_path / "not_sam.pth"
    torch.save({"w": torch.zeros(3)}, not_sam)
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        load_model(not_sam)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth")


def test_unknown_and_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPROMPT_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="samprompt weights download vit_b"):
        load_model("vit_b")
    assert weights_path("vit_b").parent == tmp_path


class _FakeResponse(io.BytesIO):
    headers = {"Content-Length": "0"}


def test_download_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPROMPT_HOME", str(tmp_path))
    payload = b"fake weights"
    spec = REGISTRY["vit_b"]
    # A wrong payload: error and nothing left behind.
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download("vit_b", progress=False, opener=lambda url: _FakeResponse(payload))
    assert list(tmp_path.iterdir()) == []
    # A network failure: a clear error, nothing left behind.
    def broken(url):
        raise OSError("no route to host")
    with pytest.raises(DownloadError, match="no route"):
        download("vit_b", progress=False, opener=broken)
    assert list(tmp_path.iterdir()) == []
    # A matching payload (registry sha256 patched to the payload's).
    good = dict(REGISTRY)
    from dataclasses import replace

    good["vit_b"] = replace(spec, sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr("samprompt.models.REGISTRY", good)
    path = download("vit_b", progress=False, opener=lambda url: _FakeResponse(payload))
    assert path.read_bytes() == payload and path.name == "sam_vit_b_01ec64.pth"
    # Present and valid: no second download.
    assert download("vit_b", progress=False, opener=broken) == path


def test_model_id_is_stable_and_weight_dependent(random_sam):
    a = build_sam(TINY_ARCH)
    b = build_sam(TINY_ARCH)
    with torch.no_grad():
        b.mask_decoder.iou_token.weight.add_(1)
    assert model_id(a) != model_id(b)
    assert model_id(a) == model_id(a)
