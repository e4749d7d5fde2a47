"""Dense prediction end to end: pasted scenes, the ADE20K / Cityscapes layouts, paired
augmentation, the segmentation trainer, the ground truth and the dense proxy batch."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vitnas.bench import GroundTruthConfig, build_ground_truth
from vitnas.cli import main
from vitnas.data import segmentation as seg
from vitnas.data.segmentation import (
    IGNORE_INDEX,
    PasteRecipe,
    SegmentationDataset,
    get_segmentation_dataset,
    paired_augment,
    paste_scenes,
    segmentation_batches,
)
from vitnas.data.transforms import CIFAR10_MEAN
from vitnas.errors import ConfigError, DatasetError
from vitnas.proxies.scoring import proxy_batch
from vitnas.proxies.targets import IGNORE
from vitnas.train import TrainConfig, evaluate_segmentation, train_model


def square_objects(n=4):
    """28x28 objects: a filled bright square in the middle, class i."""
    objects = np.zeros((n, 28, 28), dtype=np.uint8)
    objects[:, 7:21, 7:21] = 255
    return objects, np.arange(n)


def test_pasted_masks_are_the_pasted_objects_and_the_recipe_is_deterministic():
    backgrounds = np.full((3, 3, 32, 32), 10, dtype=np.uint8)
    objects, labels = square_objects()
    recipe = PasteRecipe(min_objects=1, max_objects=1, min_scale=1.0, max_scale=1.0, seed=3)
    images, masks = paste_scenes(backgrounds, objects, labels, 5, recipe)
    again = paste_scenes(backgrounds, objects, labels, 5, recipe)
    assert np.array_equal(images, again[0]) and np.array_equal(masks, again[1])
    for image, mask in zip(images, masks):
        # a full-size object: its square (scaled 28 -> 32 px) is the only labelled region
        on = mask > 0
        assert 150 < on.sum() < 400 and len(np.unique(mask[on])) == 1
        rows, cols = np.nonzero(on)
        assert rows.min() >= 7 and rows.max() <= 24 and cols.min() >= 7 and cols.max() <= 24
        # where the mask is on, the pixel is the object's colour, not the background
        changed = (image != 10).any(axis=0)
        assert changed[on].all()
    other = paste_scenes(backgrounds, objects, labels, 5, PasteRecipe(seed=4))
    assert not np.array_equal(other[1], masks)


def test_bad_recipes_and_names_are_one_line():
    with pytest.raises(ConfigError, match="min_objects"):
        PasteRecipe(min_objects=3, max_objects=1).check()
    with pytest.raises(ConfigError, match="unknown segmentation dataset 'nope'"):
        get_segmentation_dataset("nope")
    with pytest.raises(ConfigError, match="does not take option"):
        get_segmentation_dataset("ade20k", colour=1)


def write_png(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_ade20k_layout_ignores_other_and_shifts_classes(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        for k in range(2):
            image = np.full((20, 30, 3), 40 * k, dtype=np.uint8)
            label = np.zeros((20, 30), dtype=np.uint8)
            label[:10] = 1 + k  # class 1 or 2; the rest is 0 ("other")
            Image.fromarray(image).save(_mk(root / "images" / split / f"ADE_{k}.jpg"))
            write_png(root / "annotations" / split / f"ADE_{k}.png", label, "L")
    data = get_segmentation_dataset("ade20k", "test", path=tmp_path, size=16)
    assert data.images.shape == (2, 3, 16, 16) and data.num_classes == 150
    assert set(np.unique(data.masks.numpy())) == {0, 1, IGNORE_INDEX}
    assert (data.masks[1, :8] == 1).all() and (data.masks[1, 8:] == IGNORE_INDEX).all()


def _mk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    for split in ("train", "val"):
        ids = np.array([[7, 26, 0, 33]], dtype=np.uint8).repeat(4, axis=0)
        write_png(tmp_path / "leftImg8bit" / split / "aachen" / "aachen_0_leftImg8bit.png",
                  np.zeros((4, 4, 3), dtype=np.uint8), "RGB")
        write_png(tmp_path / "gtFine" / split / "aachen" / "aachen_0_gtFine_labelIds.png", ids,
                  "L")
    data = get_segmentation_dataset("cityscapes", "train", path=tmp_path, size=4)
    # road 7 -> 0, car 26 -> 13, unlabelled 0 -> ignored, bicycle 33 -> 18
    assert data.masks[0, 0].tolist() == [0, 13, IGNORE_INDEX, 18]
    assert data.classes[13] == "car"


def test_a_wide_frame_is_squashed_or_centre_cropped_as_asked(tmp_path):
    # a 2:1 frame: left quarter road (7), middle half car (26), right quarter bicycle (33)
    ids = np.full((4, 8), 26, dtype=np.uint8)
    ids[:, :2], ids[:, 6:] = 7, 33
    for split in ("train", "val"):
        write_png(tmp_path / "leftImg8bit" / split / "c" / "c_0_leftImg8bit.png",
                  np.zeros((4, 8, 3), dtype=np.uint8), "RGB")
        write_png(tmp_path / "gtFine" / split / "c" / "c_0_gtFine_labelIds.png", ids, "L")
    squashed = get_segmentation_dataset("cityscapes", "train", path=tmp_path, size=4)
    assert squashed.masks[0, 0].tolist() == [0, 13, 13, 18]
    cropped = get_segmentation_dataset("cityscapes", "train", path=tmp_path, size=4, fit="crop")
    assert cropped.masks[0].unique().tolist() == [13]  # the centre square is all car
    with pytest.raises(ConfigError, match="fit 'pad' is not one of squash, crop"):
        get_segmentation_dataset("cityscapes", "train", path=tmp_path, fit="pad")


def test_a_label_map_of_another_size_than_its_image_is_refused(tmp_path):
    write_png(tmp_path / "leftImg8bit" / "train" / "c" / "c_0_leftImg8bit.png",
              np.zeros((4, 8, 3), dtype=np.uint8), "RGB")
    write_png(tmp_path / "gtFine" / "train" / "c" / "c_0_gtFine_labelIds.png",
              np.zeros((4, 4), dtype=np.uint8), "L")
    with pytest.raises(DatasetError, match="label map is 4x4, its image 8x4"):
        get_segmentation_dataset("cityscapes", "train", path=tmp_path)


def test_a_corrupt_label_file_is_named(tmp_path):
    image = _mk(tmp_path / "leftImg8bit" / "train" / "x" / "x_0_leftImg8bit.png")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(image)
    label = _mk(tmp_path / "gtFine" / "train" / "x" / "x_0_gtFine_labelIds.png")
    label.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="x_0_gtFine_labelIds.png: cannot decode"):
        get_segmentation_dataset("cityscapes", "train", path=tmp_path)


def test_paired_augmentation_moves_image_and_mask_together():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    y = torch.arange(2 * 8 * 8).reshape(2, 8, 8)
    ax, ay = paired_augment(x, y, torch.Generator().manual_seed(0), padding=2)
    valid = ay != IGNORE_INDEX
    assert torch.equal(ax[:, 0][valid].long(), ay[valid])  # every labelled pixel kept its image
    assert (ax[:, 0][~valid] == 0).all()  # padding: black image, ignored label
    assert not torch.equal(ay, y)  # something moved (seed 0 shifts or flips)


def tiny_scenes(n=64, classes=3):
    """Learnable scenes: a bright square of class 1..classes-1 on a dark background."""
    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 3, 16, 16, dtype=torch.uint8)
    masks = torch.zeros(n, 16, 16, dtype=torch.uint8)
    for i in range(n):
        c = 1 + i % (classes - 1)
        top, left = torch.randint(0, 8, (2,), generator=generator).tolist()
        images[i, c - 1, top:top + 8, left:left + 8] = 250
        masks[i, top:top + 8, left:left + 8] = c
    return SegmentationDataset(images, masks, ["background"] + [f"c{i}" for i in
                                                                range(1, classes)])


def test_segmentation_training_learns_and_reports_miou():
    data = tiny_scenes()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 1))
    before = evaluate_segmentation(model, data)
    result = train_model(model, data, TrainConfig(epochs=30, batch_size=16, lr=1e-2,
                                                  augment=False), eval_set=data)
    assert result.top1 is None
    assert set(result.metrics) == {"miou", "pixel_acc", "macc", "iou_per_class"}
    assert len(result.metrics["iou_per_class"]) == data.num_classes
    assert result.metrics["miou"] > before["miou"] + 20 and result.metrics["miou"] > 60
    assert result.losses[-1] < result.losses[0]


def test_batches_are_seeded_and_resizable():
    data = tiny_scenes(10)
    a = list(segmentation_batches(data, 4, seed=1, augment=True))
    b = list(segmentation_batches(data, 4, seed=1, augment=True))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    x, y = next(iter(segmentation_batches(data, 4, size=8)))
    assert x.shape == (4, 3, 8, 8) and y.shape == (4, 8, 8) and y.dtype == torch.int64


@pytest.fixture
def pasted(monkeypatch, tmp_path):
    """``paste-fashion`` from tiny generated sources instead of the real files."""
    from vitnas.data import ArrayDataset

    monkeypatch.setenv("VITNAS_CACHE_DIR", str(tmp_path / "cache"))
    objects, labels = square_objects(10)
    rng = np.random.default_rng(0)

    def fake(name, split="train", data_dir=None, **kwargs):
        if name == "cifar10":
            return ArrayDataset(rng.integers(0, 255, (20, 3, 32, 32), dtype=np.uint8),
                                np.arange(20) % 10)
        return ArrayDataset(objects[:, None], labels)

    monkeypatch.setattr("vitnas.data.datasets.get_dataset", fake)
    return seg


def test_pasted_dataset_is_cached_and_feeds_a_dense_proxy_batch(pasted, tmp_path):
    first = get_segmentation_dataset("paste-fashion", "train", n=12)
    cached = list((tmp_path / "cache" / "segmentation").glob("*.npz"))
    assert len(cached) == 1 and first.num_classes == 11 and first.classes[0] == "background"
    again = get_segmentation_dataset("paste-fashion", "train", n=12)
    assert torch.equal(first.masks, again.masks)
    test = get_segmentation_dataset("paste-fashion", "test", n=12)
    assert not torch.equal(first.masks, test.masks)  # the splits are different scenes
    x, y = proxy_batch("paste-fashion", 6, 16, num_classes=11, seed=0, task="segmentation")
    assert x.shape == (6, 3, 16, 16) and y.shape == (6, 16, 16)
    assert y.min() >= IGNORE and y.max() < 11
    with pytest.raises(ConfigError, match="pass --num-classes 11"):
        proxy_batch("paste-fashion", 6, 16, num_classes=10, task="segmentation")


def test_segmentation_ground_truth_records_miou(pasted, tmp_path):
    config = GroundTruthConfig(space="s3-tiny-micro", n=1,
                               space_options={"task": "segmentation", "num_classes": 11,
                                              "img_size": 16},
                               dataset="paste-fashion", dataset_options={"n": 12}, epochs=0.5,
                               batch_size=6)
    content = build_ground_truth(config, tmp_path / "gt.json", progress=False)
    record = content["records"][0]
    assert content["metric"] == "miou" and 0 <= record["miou"] <= 100 and "top1" not in record
    assert 0 <= record["macc"] <= 100 and len(record["iou_per_class"]) == 11
    present = [v for v in record["iou_per_class"] if v is not None]
    assert present and record["miou"] == pytest.approx(sum(present) / len(present))
    assert content["normalisation"]["mean"] == [round(v, 6) for v in CIFAR10_MEAN]
    wrong = GroundTruthConfig(space="s3-tiny-micro", n=1, space_options={"num_classes": 11},
                              dataset="paste-fashion", dataset_options={"n": 12})
    with pytest.raises(ConfigError, match="pass --task segmentation"):
        build_ground_truth(wrong, tmp_path / "w.json", progress=False)


def test_cli_build_and_score_on_a_segmentation_space(pasted, tmp_path, capsys):
    out = tmp_path / "gt.json"
    code = main(["bench", "build", "s3-tiny-micro", "--task", "segmentation", "--num-classes",
                 "11", "--img-size", "16", "--dataset", "paste-fashion", "--dataset-options",
                 "n=12", "--n", "1", "--epochs", "0.5", "--batch-size", "6", "--out", str(out),
                 "--quiet", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["metric"] == "miou"
    arch = json.dumps(json.loads(out.read_text())["records"][0]["arch"])
    code = main(["score", "s3-tiny-micro", arch, "--task", "segmentation", "--num-classes", "11",
                 "--img-size", "16", "--dataset", "paste-fashion", "--batch-size", "4",
                 "--proxy", "lswag,ntk_cond,params", "--json"])
    results = json.loads(capsys.readouterr().out)["results"]
    assert code == 0 and [r["proxy"] for r in results] == ["lswag", "ntk_cond", "params"]


def test_cli_train_reports_miou_for_a_segmentation_backbone(pasted, tmp_path, capsys):
    from vitnas.spaces import get_space

    space = get_space("s3-tiny-micro", task="segmentation", num_classes=11, img_size=16)
    arch = json.dumps(space.to_json(space.sample(seed=0)))
    code = main(["train", "s3-tiny-micro", arch, "--task", "segmentation", "--num-classes", "11",
                 "--img-size", "16", "--dataset", "paste-fashion", "--dataset-options", "n=12",
                 "--epochs", "0.5", "--batch-size", "6", "--device", "cpu", "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    record = json.loads(captured.out)
    assert record["top1"] is None and 0 <= record["miou"] <= 100 and "pixel_acc" in record
    present = [v for v in record["iou_per_class"] if v is not None]
    assert present and record["miou"] == pytest.approx(sum(present) / len(present))
    code = main(["train", "s3-tiny-micro", arch, "--num-classes", "11", "--img-size", "16",
                 "--dataset", "paste-fashion", "--dataset-options", "n=12", "--quiet"])
    assert code == 2 and "pass --task segmentation" in capsys.readouterr().err


class HalfResolution(nn.Module):
    """Fixed (B, 2, 2, 2) logits whatever the input: class 0 at 0.8 everywhere, class 1 rising
    from 0 (left column) to 1 (right column)."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # where the evaluation finds the device

    def forward(self, x):
        logits = torch.zeros(len(x), 2, 2, 2)
        logits[:, 0] = 0.8
        logits[:, 1, :, 1] = 1.0
        return logits


def test_segmentation_is_scored_at_the_label_resolution():
    """Upsampled bilinearly to the 4-px-wide labels, class 1's logit is 0, 0.25, 0.75, 1 along
    a row, above class 0's 0.8 only in the last column: the labels (0, 0, 0, 1) are predicted
    exactly. An argmax at 2x2 upsampled after (0, 0, 1, 1) scores 75% pixel accuracy, and
    labels shrunk to 2x2 (nearest: columns 0 and 2, i.e. 0, 0) against the coarse argmax
    (0, 1) score 50%; only the label-resolution protocol gives 100."""
    masks = torch.tensor([[0, 0, 0, 1]], dtype=torch.uint8).repeat(4, 1)[None]  # (1, 4, 4)
    data = SegmentationDataset(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), masks, ["a", "b"])
    scores = evaluate_segmentation(HalfResolution(), data)
    assert scores["pixel_acc"] == 100.0 and scores["miou"] == 100.0
    assert scores["macc"] == 100.0 and scores["iou_per_class"] == [100.0, 100.0]


def test_real_benchmarks_are_normalised_with_their_training_statistics(tmp_path, monkeypatch):
    """Train frames at 200, validation frames at 40: both splits carry the training split's
    mean (200 / 255), not their own, and say where it comes from; the test split finds it
    again through the cache or by measuring the training images."""
    monkeypatch.setenv("VITNAS_CACHE_DIR", str(tmp_path / "cache"))
    for split, value in (("train", 200), ("val", 40)):
        for k in range(2):
            write_png(tmp_path / "leftImg8bit" / split / "c" / f"c_{k}_leftImg8bit.png",
                      np.full((4, 4, 3), value, dtype=np.uint8), "RGB")
            write_png(tmp_path / "gtFine" / split / "c" / f"c_{k}_gtFine_labelIds.png",
                      np.full((4, 4), 7, dtype=np.uint8), "L")
    trained_on = pytest.approx((200 / 255,) * 3)
    test_first = get_segmentation_dataset("cityscapes", "test", path=tmp_path, size=4)
    assert test_first.mean == trained_on  # measured from the training images: no cache yet
    train = get_segmentation_dataset("cityscapes", "train", path=tmp_path, size=4)
    test = get_segmentation_dataset("cityscapes", "test", path=tmp_path, size=4)
    assert train.mean == trained_on and test.mean == trained_on and test.std == train.std
    assert "cityscapes training split (2 images)" == test.statistics_source
    assert float(test.images.float().mean()) == 40  # the test images stay themselves


@pytest.mark.parametrize("options, message", [
    ({"n": "abc"}, "option n must be an integer, got 'abc'"),
    ({"n": -5}, "option n >= 1"),
    ({"size": 0}, "option size must be >= 8"),
    ({"threshold": "nan"}, "option threshold must be a finite number"),
    ({"seed": 2.5}, "option seed must be an integer"),
    ({"noise": 0.1}, "does not take option(s) noise"),
])
def test_pasted_dataset_options_are_checked_before_any_data_is_read(options, message,
                                                                   monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the sources were read before the options were checked")

    monkeypatch.setattr("vitnas.data.datasets.get_dataset", no_data)
    with pytest.raises(ConfigError) as error:
        get_segmentation_dataset("paste-fashion", "train", **options)
    assert message in str(error.value)


def test_the_next_command_after_a_segmentation_search_trains_a_segmenter():
    """The printed suggestion must rebuild the searched backbone (task, classes, size) and
    train it on the searched dataset, and must parse as a `vitnas train` command."""
    import shlex

    from vitnas.cli import build_parser
    from vitnas.search.retrain import train_command
    from vitnas.spaces import get_space

    space = get_space("s3-tiny-micro", task="segmentation", num_classes=11, img_size=16)
    command = train_command(space, "runs/x/best.json", "paste-mnist",
                            {"task": "segmentation", "num_classes": 11, "img_size": 16})
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.command, args.space, args.arch) == ("train", "s3-tiny-micro",
                                                     "runs/x/best.json")
    assert (args.task, args.num_classes, args.img_size) == ("segmentation", 11, 16)
    assert args.dataset == "paste-mnist"
    # searched on noise: still a segmentation dataset, with the space's classes though unset
    args = build_parser().parse_args(shlex.split(train_command(space, "b.json", "gaussian"))[1:])
    assert (args.task, args.num_classes, args.dataset) == ("segmentation", 11, "paste-fashion")
    classifier = get_space("autoformer-tiny-micro")
    args = build_parser().parse_args(shlex.split(train_command(classifier, "b.json",
                                                               "gaussian"))[1:])
    assert args.dataset == "cifar10" and args.task is None
