import math
import signal

import pytest
import torch

from vitnas.data import SyntheticDataset
from vitnas.errors import ConfigError
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


@pytest.fixture
def time_limit():
    """Fail a test that runs past its limit instead of hanging the suite."""
    def handler(signum, frame):
        raise TimeoutError("test ran past its time limit")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_set_smaller_than_one_batch_trains_instead_of_looping_forever(time_limit):
    train = SyntheticDataset(10, num_classes=2, image_size=8, seed=0)
    space = get_space("autoformer-tiny-micro", img_size=8, num_classes=2)
    model = space.build(space.sample(0), seed=0)
    result = train_model(model, train, TrainConfig(epochs=2, batch_size=128))
    assert result.steps == 2 and len(result.losses) == 2


@pytest.mark.parametrize("config, message", [
    (TrainConfig(epochs=0), "epochs must be"),
    (TrainConfig(epochs=-1), "epochs must be"),
    (TrainConfig(epochs=float("nan")), "epochs must be"),
    (TrainConfig(batch_size=0), "batch size must be >= 1"),
    (TrainConfig(lr=float("nan")), "learning rate must be"),
    (TrainConfig(optimizer="adam"), "optimizer 'adam'"),
    (TrainConfig(precision="fp16"), "precision 'fp16'"),
])
def test_a_recipe_that_cannot_train_is_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        config.check()


def test_bf16_precision_runs_under_autocast_on_cpu_and_auto_does_not():
    cpu = torch.device("cpu")
    assert TrainConfig(precision="bf16").autocast(cpu)
    assert not TrainConfig().autocast(cpu) and TrainConfig().autocast(torch.device("cuda"))
    assert not TrainConfig(precision="fp32").autocast(torch.device("cuda"))
    seen = []

    def loss_fn(model, x, y, smoothing):
        out = model(x)
        seen.append(out.dtype)
        return torch.nn.functional.cross_entropy(out.float(), y)

    train = SyntheticDataset(64, num_classes=2, image_size=8, seed=0)
    space = get_space("autoformer-tiny-micro", img_size=8, num_classes=2)
    model = space.build(space.sample(0), seed=0)
    result = train_model(model, train, TrainConfig(epochs=1, batch_size=32, precision="bf16"),
                         loss_fn=loss_fn)
    assert seen == [torch.bfloat16] * 2 and all(map(math.isfinite, result.losses))


def test_bf16_on_a_cpu_without_bf16_instructions_is_flagged(tmp_path, monkeypatch):
    import vitnas.train as train_module

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert train_module.native_cpu_bf16(str(avx2)) is False
    assert train_module.native_cpu_bf16(str(amx)) is True
    assert train_module.native_cpu_bf16(str(tmp_path / "missing")) is None

    monkeypatch.setattr(train_module, "native_cpu_bf16", lambda: False)
    assert TrainConfig(precision="bf16").emulated_bf16("cpu")
    assert not TrainConfig(precision="auto").emulated_bf16("cpu")  # auto is fp32 on a CPU
    assert not TrainConfig(precision="fp32").emulated_bf16("cpu")
    assert not TrainConfig(precision="bf16").emulated_bf16("cuda")
    monkeypatch.setattr(train_module, "native_cpu_bf16", lambda: True)
    assert not TrainConfig(precision="bf16").emulated_bf16("cpu")
    monkeypatch.setattr(train_module, "native_cpu_bf16", lambda: None)  # unknown: no note
    assert not TrainConfig(precision="bf16").emulated_bf16("cpu")


def test_a_run_killed_after_an_epoch_resumes_to_the_weights_of_one_never_killed(
        tmp_path, monkeypatch):
    import vitnas.train as train_module

    train = SyntheticDataset(96, num_classes=4, image_size=16, seed=0)
    space = get_space("autoformer-tiny-micro", img_size=16, num_classes=4)
    config = TrainConfig(epochs=3, batch_size=32)
    whole = train_model(space.build(space.sample(0), seed=0), train, config,
                        state_path=tmp_path / "whole.state.pt", identity={"arch": 0})
    assert whole.resumed_from is None and (tmp_path / "whole.state.pt").is_file()

    saved = train_module.save

    def killed_after_first_epoch(path, payload):
        saved(path, payload)
        if payload["epoch"] == 1:
            raise KeyboardInterrupt

    state = tmp_path / "run.state.pt"
    monkeypatch.setattr(train_module, "save", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_model(space.build(space.sample(0), seed=0), train, config, state_path=state,
                    identity={"arch": 0})
    monkeypatch.setattr(train_module, "save", saved)
    with pytest.raises(ConfigError, match=r"saved for another run \(arch was 0, now 1\)"):
        train_model(space.build(space.sample(0), seed=0), train, config, state_path=state,
                    resume=True, identity={"arch": 1})
    with pytest.raises(ConfigError, match=r"recipe.lr was 0.001, now 0.002"):
        train_model(space.build(space.sample(0), seed=0), train,
                    TrainConfig(epochs=3, batch_size=32, lr=2e-3), state_path=state,
                    resume=True, identity={"arch": 0})
    resumed = train_model(space.build(space.sample(0), seed=0), train, config,
                          state_path=state, resume=True, identity={"arch": 0})
    assert resumed.resumed_from == 3 and resumed.losses == whole.losses
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


@pytest.mark.parametrize("damage, reason", [
    (lambda s: s.pop("model"), "'model'"),
    (lambda s: s.update(step="x"), "out of place"),
    (lambda s: s.update(step=10**9), "out of place"),
    (lambda s: s.update(losses=s["losses"][:-1]), "out of place"),
    (lambda s: s["model"].update({k: torch.zeros(1) for k in list(s["model"])[:1]}), "size"),
])
def test_a_damaged_training_state_is_one_line_not_a_traceback(tmp_path, damage, reason):
    from vitnas import checkpoint

    train = SyntheticDataset(64, num_classes=4, image_size=16, seed=0)
    space = get_space("autoformer-tiny-micro", img_size=16, num_classes=4)
    config, state = TrainConfig(epochs=1, batch_size=32), tmp_path / "run.state.pt"
    train_model(space.build(space.sample(0), seed=0), train, config, state_path=state)
    saved = torch.load(state, weights_only=True)
    damage(saved)
    checkpoint.save(state, saved)
    with pytest.raises(ConfigError, match=f"damaged training state .*{reason}") as err:
        train_model(space.build(space.sample(0), seed=0), train, config, state_path=state,
                    resume=True)
    assert "\n" not in str(err.value)


def test_a_state_path_that_is_not_a_file_is_refused_before_training(tmp_path):
    train = SyntheticDataset(64, num_classes=4, image_size=16, seed=0)
    space = get_space("autoformer-tiny-micro", img_size=16, num_classes=4)
    (tmp_path / "run.state.pt").mkdir()
    model = space.build(space.sample(0), seed=0)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match="not a file"):
        train_model(model, train, TrainConfig(epochs=1, batch_size=32),
                    state_path=tmp_path / "run.state.pt")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
