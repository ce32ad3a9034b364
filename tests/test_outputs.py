"""One output guard for every command: nothing over an input, inside an input dataset or over someone's file."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from samprompt import cli
from samprompt.outputs import LEDGER, OutputError, check_outputs, foreign_files, written_by_samprompt
from samprompt.synthetic import write_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A labelled folder with one image, a volume folder with one volume, a defects set and a raster."""
    root = tmp_path_factory.mktemp("world")
    data = write_dataset(root / "lab", 1)
    one = root / "one"
    one.mkdir()
    shutil.copy(next((data / "images").glob("*.png")), one / "pic.png")
    w = {"root": root, "lab": data, "image": one / "pic.png"}
    pytest.importorskip("nibabel")
    from samprompt.synthetic.volumes import write_volume_dataset

    vols = write_volume_dataset(root / "vol", 1, shape=(32, 32, 8))
    w["vol"] = vols
    w["volume"] = next((vols / "images").glob("*.nii.gz"))
    pytest.importorskip("sklearn")
    from samprompt.synthetic.defects import write_defect_dataset

    w["parts"] = write_defect_dataset(root / "parts", ("grid",), train=3, test_good=1, per_defect=1)
    return w


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LEDGER}


def _refused(args, capsys, expect, *watch):
    before = [_snapshot(f) for f in watch]
    assert cli.main(args) == 2, args
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1, (args, err)
    assert [_snapshot(f) for f in watch] == before  # inputs byte-identical, nothing added to them


def test_check_outputs_rules(tmp_path):
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    src.write_bytes(b"x")
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_outputs([src], inputs=[src])
    with pytest.raises(OutputError, match="inside the input folder"):
        check_outputs([tmp_path / "in" / "sub" / "b.png"], input_dirs=[tmp_path / "in"])
    with pytest.raises(OutputError, match="inside the input folder"):  # beside an input file
        check_outputs([tmp_path / "in" / "b.png"], inputs=[src])
    check_outputs([tmp_path / "in" / "sub" / "b.png"], inputs=[src])  # a subfolder of its folder is fine
    mine = tmp_path / "out" / "m.json"
    from samprompt.io import atomic_write_text

    atomic_write_text(mine, "{}")
    assert written_by_samprompt(mine) and foreign_files(tmp_path / "out") == []
    check_outputs([mine])  # ours: a rerun may replace it
    theirs = tmp_path / "out" / "t.json"
    theirs.write_text("{}")
    with pytest.raises(OutputError, match="t.json exists and was not written by samprompt"):
        check_outputs([theirs])
    check_outputs([theirs], overwrite=True)
    mine.write_text('{"edited": 1}')
    with pytest.raises(OutputError, match="changed since samprompt wrote it"):
        check_outputs([mine])
    assert foreign_files(tmp_path / "out") == [mine, theirs]


def test_segment_refuses_every_bad_out(world, tmp_path, capsys):
    img, lab = world["image"], world["lab"]
    _refused(["segment", str(img), "--point", "5,5", "--out", str(img.parent)], capsys, "would overwrite the input",
             img.parent)
    _refused(["segment", str(img), "--point", "5,5", "--out", str(img)], capsys, "is a file", img.parent)
    # the dataset's masks folder: the label map would land on a truth mask of the same name
    _refused(["segment", str(lab / "images"), "--point", "5,5", "--out", str(lab / "masks")], capsys,
             "exists and was not written by samprompt", lab)
    foreign = tmp_path / "o"
    foreign.mkdir()
    (foreign / "pic.png").write_bytes(b"someone's")
    _refused(["segment", str(img), "--point", "5,5", "--out", str(foreign)], capsys, "pic.png exists", foreign)
    out = tmp_path / "fine"
    for _ in range(2):  # a rerun into its own earlier output works
        assert cli.main(["segment", str(img), "--point", "5,5", "--out", str(out), "--quiet"]) == 0
    assert cli.main(["segment", str(img), "--point", "5,5", "--out", str(foreign), "--overwrite", "--quiet"]) == 0


def test_eval_plot_and_tune_out_refused_inside_the_data(world, tmp_path, capsys):
    lab = world["lab"]
    mask = next((lab / "masks").glob("*.png"))
    _refused(["eval", str(lab), "--plot", str(mask)], capsys, "would be written inside the input folder", lab)
    _refused(["eval", str(lab), "--plot", str(lab / "plot.png")], capsys, "inside the input folder", lab)
    (tmp_path / "mine.png").write_bytes(b"a photo")
    _refused(["eval", str(lab), "--plot", str(tmp_path / "mine.png")], capsys, "mine.png exists", lab, tmp_path)
    for out in (lab / "images", lab / "masks", lab):
        _refused(["tune", str(lab), "--method", "pixel-pad", "--out", str(out)], capsys, "inside the input folder",
                 lab)
    (tmp_path / "afile").write_text("x")
    _refused(["tune", str(lab), "--method", "pixel-pad", "--out", str(tmp_path / "afile")], capsys, "is a file", lab)


def test_every_command_refuses_an_out_that_is_a_file_before_any_work(world, tmp_path, capsys):
    """Issue 32: defects (like tune before) failed with "File exists" only after its first category ran."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    parts, vol = str(world["parts"]), world["vol"]
    for args in (["defects", parts], ["defects", "fit", parts, "--category", "grid", "--shots", "2"],
                 ["segment", str(world["image"]), "--auto"],
                 ["medical", str(vol / "images"), "--prompts", str(vol / "prompts.json")]):
        _refused([*args, "--out", str(afile)], capsys, "is a file, not a folder", world["root"])
    assert afile.read_text() == "x"


def test_medical_refuses_a_ground_truth_beside_the_volume(world, tmp_path, capsys):
    vol = world["volume"]
    prompts = world["vol"] / "prompts.json"
    _refused(["medical", str(vol), "--prompts", str(prompts), "--out", str(vol.parent)], capsys,
             "inside the input folder", world["vol"])
    gt = tmp_path / "gt"
    gt.mkdir()
    name = vol.name.replace(".nii.gz", "_seg.nii.gz")
    (gt / name).write_bytes(b"ground truth labels")
    _refused(["medical", str(vol), "--prompts", str(prompts), "--out", str(gt)], capsys,
             f"{name} exists and was not written by samprompt", gt, world["vol"])


def test_defects_and_fit_refuse_the_dataset_and_foreign_files(world, tmp_path, capsys):
    parts = world["parts"]
    _refused(["defects", str(parts), "--out", str(parts / "grid" / "ground_truth")], capsys,
             "inside the input folder", parts)
    _refused(["defects", "fit", str(parts), "--category", "grid", "--shots", "2", "--out",
              str(parts / "grid" / "train")], capsys, "inside the input folder", parts)
    mine = tmp_path / "m"
    mine.mkdir()
    (mine / "defect_model.json").write_text("{}")
    _refused(["defects", "fit", str(parts), "--category", "grid", "--shots", "2", "--out", str(mine)], capsys,
             "defect_model.json exists and was not written by samprompt", parts, mine)


def test_synth_refuses_a_folder_of_someone_elses_files_and_reruns_its_own(tmp_path, capsys):
    theirs = tmp_path / "theirs"
    (theirs / "images").mkdir(parents=True)
    (theirs / "images" / "default_000000.png").write_bytes(b"a user's image")
    _refused(["synth", str(theirs), "-n", "2"], capsys, "holds 1 file(s) samprompt did not write", theirs)
    mine = tmp_path / "mine"
    assert cli.main(["synth", str(mine), "-n", "2"]) == 0
    assert cli.main(["synth", str(mine), "-n", "2"]) == 0  # its own: a rerun works
    assert cli.main(["synth", str(theirs), "-n", "1", "--overwrite"]) == 0



def test_more_synth_into_one_folder_adds_and_says_what_it_replaced(tmp_path, capsys):
    """Issue 32: one more volume into a folder rewrote prompts.json, the other volumes' prompts gone."""
    import json

    pytest.importorskip("nibabel")
    vols = tmp_path / "ct"
    for seed in (0, 5):
        assert cli.main(["synth", str(vols), "--volumes", "-n", "1", "--seed", str(seed), "--shape", "24,24,6"]) == 0
    assert sorted(json.loads((vols / "prompts.json").read_text())) == ["ct_0000", "ct_0005"]
    scenes = tmp_path / "s"
    assert cli.main(["synth", str(scenes), "-n", "2"]) == 0
    assert cli.main(["synth", str(scenes), "-n", "2", "--seed", "1", "--style", "rooftops"]) == 0
    det = json.loads((scenes / "detections.json").read_text())
    assert [i["file_name"] for i in det["images"]] == ["default_000000.png", "default_000001.png",
                                                      "rooftops_000001.png", "rooftops_000002.png"]
    assert [c["name"] for c in det["categories"]] == ["shape", "roof"]
    assert {a["image_id"] for a in det["annotations"]} == {1, 2, 3, 4}
    capsys.readouterr()
    assert cli.main(["synth", str(scenes), "-n", "2"]) == 0  # the same again: nothing replaced, nothing said
    assert "replaced" not in capsys.readouterr().out
    assert cli.main(["synth", str(scenes), "-n", "1", "--size", "128"]) == 0  # other bytes under one name
    out = capsys.readouterr().out
    assert "replaced 2 file(s) an earlier synth wrote here" in out and "default_000000.png" in out


def test_annotate_out_that_is_a_file_is_refused(world, tmp_path):
    pytest.importorskip("gradio")
    from samprompt.annotate.session import Annotator
    from samprompt.segmenter import Segmenter

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        Annotator(Segmenter(), world["lab"] / "images", tmp_path / "afile")


def test_python_exports_refuse_foreign_files(tmp_path):
    from samprompt import CocoWriter, Prompt, export_png, save_prompts

    (tmp_path / "x.png").write_bytes(b"mine")
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(OutputError, match="x.png exists"):
        export_png(tmp_path, "x", img, np.zeros((1, 8, 8), bool))
    assert (tmp_path / "x.png").read_bytes() == b"mine"
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(OutputError):
        save_prompts(tmp_path / "p.json", [Prompt(box=(1, 1, 4, 4))])
    save_prompts(tmp_path / "p.json", [Prompt(box=(1, 1, 4, 4))], overwrite=True)
    assert json.loads((tmp_path / "p.json").read_text())["objects"]
    save_prompts(tmp_path / "p.json", [Prompt(box=(1, 1, 5, 5))])  # now ours
    CocoWriter().write(tmp_path / "c.json")
    CocoWriter().write(tmp_path / "c.json")


def test_geo_and_inspect_refuse_foreign_outputs(world, tmp_path, capsys):
    pytest.importorskip("rasterio")
    from samprompt.synthetic.rasters import write_raster_dataset

    geo = write_raster_dataset(tmp_path / "geo", 512, seed=1)
    scene = geo / "scene.tif"
    _refused(["geo", str(scene), "--prompts", str(geo / "prompts.geojson"), "--out", str(geo)], capsys,
             "inside the input folder", geo)
    mine = tmp_path / "g"
    mine.mkdir()
    (mine / "scene.geojson").write_text("{}")  # someone's polygons with the output's name
    _refused(["geo", str(scene), "--prompts", str(geo / "prompts.geojson"), "--out", str(mine)], capsys,
             "scene.geojson exists and was not written by samprompt", geo, mine)
    parts = world["parts"]
    model = tmp_path / "model"
    assert cli.main(["defects", "fit", str(parts), "--category", "grid", "--shots", "2", "--out", str(model)]) == 0
    test = parts / "grid" / "test" / "good"
    _refused(["defects", "inspect", str(model), str(test), "--out", str(test)], capsys, "input", parts)
    (mine / "results.jsonl").write_text("")
    _refused(["defects", "inspect", str(model), str(test), "--out", str(mine)], capsys,
             "results.jsonl exists and was not written by samprompt", parts, mine)


def test_annotator_exports_and_export_onnx_refuse_foreign_files(tmp_path, capsys):
    pytest.importorskip("gradio")
    import cv2

    from samprompt.annotate.session import MODES, Annotator, SessionState
    from samprompt.segmenter import Segmenter
    from samprompt.synthetic import make_scene

    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "im0.png"), make_scene(0, size=(96, 128)).image[..., ::-1])
    out = tmp_path / "ann"
    out.mkdir()
    (out / "im0.png").write_bytes(b"a label map made by hand")
    app = Annotator(Segmenter("tiny"), d, out)
    st = SessionState()
    app.open_index(st, 0)
    app.click(st, 0, 0, MODES[2], "object")
    app.click(st, 128, 96, MODES[2], "object")
    with pytest.raises(OutputError, match="im0.png exists and was not written by samprompt"):
        app.export(st)
    assert (out / "im0.png").read_bytes() == b"a label map made by hand"
    (out / "im0.png").unlink()
    assert any(p.endswith("im0.png") for p in app.export(st))  # and again: its own files are replaced
    assert any(p.endswith("im0.png") for p in app.export(st))
    pytest.importorskip("onnx")
    onnx_dir = tmp_path / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "encoder.onnx").write_bytes(b"someone's model")
    _refused(["export-onnx", "tiny", "--out", str(onnx_dir)], capsys, "encoder.onnx exists", onnx_dir)
