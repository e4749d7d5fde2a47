"""Every proxy on a segmentation model: per-pixel labels, (N, C, H, W) logits, ignored pixels."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitnas.proxies import score_model
from vitnas.proxies.kernel import scalarise
from vitnas.proxies.lga import label_kernel
from vitnas.proxies.spec import training_free_proxies
from vitnas.proxies.targets import IGNORE, distinct_classes, image_labels, image_targets
from vitnas.spaces import get_space


@pytest.fixture(scope="module")
def dense_case():
    space = get_space("s3-tiny-micro", task="segmentation", num_classes=5)
    arch = space.sample(seed=0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 32, 32, generator=generator)
    y = torch.randint(0, 5, (6, 32, 32), generator=generator)
    y[:, :3] = IGNORE  # a band of ignored pixels, as ADE20K's "other"
    return space, arch, space.build(arch, seed=0), x, y


SLOW = {"ntk_mgm"}  # per-sample loops; covered by the kernel-path tests


@pytest.mark.parametrize("name", [n for n in training_free_proxies() if n not in SLOW])
def test_every_proxy_scores_a_segmentation_model(dense_case, name):
    space, arch, model, x, y = dense_case
    result = score_model(model, [name], x, y, space.num_classes, seed=0, space=space,
                         arch=arch)[0]
    assert math.isfinite(result.score), (name, result.warnings)


def test_image_targets_are_class_frequencies_over_valid_pixels():
    labels = torch.tensor([[[0, 0], [1, IGNORE]], [[2, 2], [2, 2]]])
    targets = image_targets(labels, 3)
    assert torch.allclose(targets, torch.tensor([[2 / 3, 1 / 3, 0], [0, 0, 1]],
                                                dtype=torch.float64))
    assert image_labels(labels, 3).tolist() == [0, 2]
    assert distinct_classes(labels) == 3
    # one class per image: the label kernel equals the classification one
    single = torch.tensor([[[1, 1], [1, 1]], [[1, 1], [1, 1]], [[0, 0], [0, 0]]])
    assert torch.equal(label_kernel(single, 2), label_kernel(torch.tensor([1, 1, 0])))


def test_dense_scalars_average_the_valid_pixels():
    logits = torch.randn(2, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [2, IGNORE]], [[1, 1], [1, 1]]])
    loss = scalarise(logits, labels, "loss")
    expected = [F.cross_entropy(logits[i:i + 1], labels[i:i + 1]) for i in range(2)]
    assert torch.allclose(loss, torch.stack(expected))
    true_logit = scalarise(logits, labels, "true_logit")
    assert torch.isclose(true_logit[0], (logits[0, 0, 0, 0] + logits[0, 1, 0, 1]
                                         + logits[0, 2, 1, 0]) / 3)
    assert torch.allclose(scalarise(logits, labels, "logits_sum"), logits.sum(dim=(1, 2, 3)))
