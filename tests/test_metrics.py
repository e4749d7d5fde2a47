"""Confusion-matrix metrics: a hand-computed case, accumulation over batches, conventions."""

import math

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.metrics import (
    accuracy_per_class,
    confusion_matrix,
    iou_per_class,
    mean_accuracy,
    mean_iou,
    pixel_accuracy,
    segmentation_scores,
    top1,
)

# target / prediction of one 2x3 image; 255 is ignored. Scored pixels (true, predicted):
# (0,0) (0,1) (1,1) (1,1) (2,0). IoU: class 0 = 1/3, class 1 = 2/3, class 2 = 0/1;
# class 3 appears nowhere, so it is left out of the mean.
TARGET = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
PRED = torch.tensor([[[0, 1, 1], [1, 0, 2]]])


def test_hand_made_case_gives_the_known_miou_and_pixel_accuracy():
    confusion = confusion_matrix(PRED, TARGET, num_classes=4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = iou_per_class(confusion)
    assert iou[:3].tolist() == pytest.approx([100 / 3, 200 / 3, 0.0])
    assert math.isnan(float(iou[3]))
    assert mean_iou(confusion) == pytest.approx(100 / 3)
    assert pixel_accuracy(confusion) == pytest.approx(60.0)


def test_per_class_iou_and_mean_accuracy_on_a_3x3_map_by_hand():
    """Rows true, columns predicted: [[1, 1, 0], [1, 2, 0], [0, 1, 3]]. IoU = TP / (TP + FP +
    FN): 1/3, 2/5, 3/4. Recall = TP / true pixels: 1/2, 2/3, 3/4, so mAcc = 63.89, neither the
    pixel accuracy (6/9 = 66.67) nor the mean precision (1/2, 2/4, 3/3: 66.67). Class 3 is in
    neither map: no IoU (None in the list), no recall, left out of both means."""
    target = torch.tensor([[[0, 0, 1], [1, 1, 2], [2, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 0, 2], [2, 1, 2]]])
    confusion = confusion_matrix(pred, target, num_classes=4)
    assert confusion[:3, :3].tolist() == [[1, 1, 0], [1, 2, 0], [0, 1, 3]]
    assert accuracy_per_class(confusion)[:3].tolist() == pytest.approx([50, 200 / 3, 75])
    assert math.isnan(float(accuracy_per_class(confusion)[3]))
    assert mean_accuracy(confusion) == pytest.approx((50 + 200 / 3 + 75) / 3)
    scores = segmentation_scores(confusion)
    assert scores["iou_per_class"] == pytest.approx([100 / 3, 40, 75, None])
    assert scores["miou"] == pytest.approx((100 / 3 + 40 + 75) / 3)
    assert scores["macc"] == pytest.approx(63.8889, abs=1e-4)
    assert scores["pixel_acc"] == pytest.approx(200 / 3)


def test_matrices_of_batches_add_up_to_the_matrix_of_the_whole():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (6, 8, 8), generator=generator)
    target[target == 4] = 255
    pred = torch.randint(0, 4, (6, 8, 8), generator=generator)
    whole = confusion_matrix(pred, target, 4)
    parts = sum(confusion_matrix(pred[i : i + 2], target[i : i + 2], 4) for i in range(0, 6, 2))
    assert torch.equal(whole, parts)
    assert int(whole.sum()) == int((target != 255).sum())


def test_a_class_only_predicted_counts_as_zero_and_an_absent_class_is_excluded():
    target = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 1])
    confusion = confusion_matrix(pred, target, num_classes=3)
    # class 0: 3 / 4, class 1: 0 / 1 (predicted, never true), class 2: absent
    assert mean_iou(confusion) == pytest.approx((75.0 + 0.0) / 2)


def test_a_perfect_prediction_scores_100_and_nothing_scored_is_nan():
    target = torch.tensor([[2, 1], [0, 255]])
    perfect = confusion_matrix(target.clamp(max=2), target, 3)
    assert mean_iou(perfect) == 100.0 and pixel_accuracy(perfect) == 100.0
    nothing = confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 255), 3)
    assert math.isnan(mean_iou(nothing)) and math.isnan(pixel_accuracy(nothing))


def test_custom_ignore_index_is_honoured():
    target = torch.tensor([0, 1, -1])
    pred = torch.tensor([0, 0, 1])
    confusion = confusion_matrix(pred, target, 2, ignore_index=-1)
    assert pixel_accuracy(confusion) == pytest.approx(50.0)


@pytest.mark.parametrize("pred, target, message", [
    (torch.tensor([0, 1]), torch.tensor([0, 7]), "target holds class 7, outside 0..2"),
    (torch.tensor([0, 3]), torch.tensor([0, 1]), "prediction holds class 3"),
    (torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "not logits"),
    (torch.zeros(4), torch.zeros(4, dtype=torch.long), "integer class maps"),
])
def test_bad_inputs_are_one_clear_config_error(pred, target, message):
    with pytest.raises(ConfigError, match=message):
        confusion_matrix(pred, target, 3)


def test_top1_counts_correct_argmaxes():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [0.0, 1.0]])
    assert top1(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(75.0)
    with pytest.raises(ConfigError, match="top1 needs"):
        top1(logits, torch.tensor([0, 1]))
