import json

import numpy as np
import pytest

from samprompt import (
    Prompt,
    PromptError,
    SampromptError,
    load_prompts,
    prompts_from_json,
    prompts_to_json,
    save_prompts,
)


def test_defaults_and_signature():
    p = Prompt(points=[(10, 20)])
    assert p.labels.tolist() == [1]
    assert p.signature == (1, False, False)
    assert p.is_ambiguous
    q = Prompt(points=[(1, 2), (3, 4)], labels=[1, 0], box=(0, 0, 5, 5))
    assert q.signature == (2, True, False) and not q.is_ambiguous


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(), "empty prompt"),
        (dict(points=[(1, 2)], labels=[2]), r"0 \(negative\) or 1"),
        (dict(points=[(1, 2)], labels=[1, 0]), "1 points but 2 labels"),
        (dict(points=[(np.nan, 2)]), "finite"),
        (dict(points=[(1, 2, 3)]), r"shape \(N, 2\)"),
        (dict(box=(10, 10, 5, 20)), "inverted"),
        (dict(box=(10, 10, 10, 20)), "degenerate"),
        (dict(box=(0, 0, np.inf, 3)), "finite"),
        (dict(box=(0, 0, 3)), "4 numbers"),
        (dict(mask=np.zeros((2, 3, 4))), "2-D"),
        (dict(mask=np.zeros((4, 4), np.int32)), "dtype"),
        (dict(mask=np.full((4, 4), np.nan, np.float32)), "NaN"),
    ],
)
def test_bad_prompts_raise_clear_errors(kwargs, words):
    with pytest.raises(PromptError, match=words) as info:
        Prompt(**kwargs)
    assert isinstance(info.value, SampromptError)


def test_validate_follows_continuous_pixel_coordinates():
    # pixel (i, j) covers [i, i+1) x [j, j+1): the image spans [0, W] x [0, H], edges included
    Prompt(points=[(0, 0), (99.5, 49.5), (100, 50)], box=(0, 0, 100, 50)).validate(50, 100)
    with pytest.raises(PromptError, match=r"outside the 100x50 .* \[0, 100\] x \[0, 50\]"):
        Prompt(points=[(100.01, 10)]).validate(50, 100)
    with pytest.raises(PromptError, match="outside"):
        Prompt(points=[(10, 50.5)]).validate(50, 100)
    with pytest.raises(PromptError, match="outside"):
        Prompt(points=[(-1, 10)]).validate(50, 100)
    with pytest.raises(PromptError, match="extends outside"):
        Prompt(box=(0, 0, 100.5, 10)).validate(50, 100)
    with pytest.raises(PromptError, match="bool mask prompt has shape"):
        Prompt(mask=np.zeros((10, 10), bool)).validate(50, 100)


def test_json_round_trip(tmp_path, rng):
    binary = rng.random((30, 40)) > 0.5
    logits = rng.normal(size=(64, 64)).astype(np.float32)
    prompts = [
        Prompt(points=[(1.5, 2.25), (10, 11)], labels=[1, 0], label="cat"),
        Prompt(box=(1, 2, 30, 20)),
        Prompt(points=[(5, 5)], mask=binary),
        Prompt(box=(0, 0, 39, 29), mask=logits),
    ]
    path = save_prompts(tmp_path / "p.json", prompts, image="x.png", image_size=(30, 40))
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["image"] == "x.png" and len(doc["objects"]) == 4
    back = load_prompts(path)
    assert back[0].points.tolist() == [[1.5, 2.25], [10, 11]] and back[0].labels.tolist() == [1, 0]
    assert back[0].label == "cat" and back[0].box is None
    assert back[1].box.tolist() == [1, 2, 30, 20]
    assert back[2].mask.dtype == bool and np.array_equal(back[2].mask, binary)
    np.testing.assert_allclose(back[3].mask, logits, rtol=1e-3, atol=1e-3)


def test_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PromptError, match="not valid JSON"):
        load_prompts(bad)
    with pytest.raises(PromptError, match="version"):
        prompts_from_json({"version": 99, "objects": []})
    with pytest.raises(PromptError, match="unknown prompt keys"):
        prompts_from_json({"objects": [{"points": [[1, 1]], "colour": "red"}]})
    with pytest.raises(PromptError, match="outside"):
        prompts_from_json({"image_size": [10, 10], "objects": [{"points": [[20, 1]]}]})
    assert len(prompts_from_json([{"box": [0, 0, 4, 4]}])) == 1


def test_with_click_keeps_box_and_adds_logits():
    p = Prompt(box=(0, 0, 10, 10), label="a")
    q = p.with_click(3, 4, 0, logits=np.zeros((64, 64), np.float32))
    assert q.points.tolist() == [[3, 4]] and q.labels.tolist() == [0]
    assert q.box.tolist() == [0, 0, 10, 10] and q.mask.shape == (64, 64) and q.label == "a"
    assert prompts_to_json([q])["objects"][0]["mask"]["kind"] == "logits"
