import torch

from vitnas.data import SyntheticDataset
from vitnas.spaces import get_space
from vitnas.train import TrainConfig, evaluate, learning_rate, train_model


def test_warmup_then_cosine_schedule():
    config = TrainConfig(lr=1.0, warmup_fraction=0.1)
    rates = [learning_rate(s, 100, config) for s in range(100)]
    assert rates[0] < rates[9] == 1.0
    assert rates[50] < 1.0 and rates[-1] < 0.01


def test_training_learns_synthetic_classes():
    train = SyntheticDataset(256, num_classes=4, image_size=16, seed=0)
    test = SyntheticDataset(128, num_classes=4, image_size=16, seed=0, split="test")
    space = get_space("autoformer-tiny-micro", img_size=16, num_classes=4)
    model = space.build(space.sample(0), seed=0)
    before = evaluate(model, test)
    result = train_model(model, train, TrainConfig(epochs=4, batch_size=32, lr=2e-3), test)
    assert result.steps == 4 * 8
    assert result.top1 > max(before, 50.0)
    assert torch.tensor(result.losses[-8:]).mean() < torch.tensor(result.losses[:8]).mean()
