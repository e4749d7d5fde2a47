import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitnas.errors import ConfigError
from vitnas.flops import measured_flops
from vitnas.models.vit import VisionTransformer
from vitnas.revit import (
    AssignerConfig,
    ReViTConfig,
    SplitSpec,
    TokenLengthAssigner,
    bucketed_predict,
    build_revit,
    cascade_predict,
    correct_by_length,
    decide,
    length_grid,
    pi_resize_kernel,
    predict_at,
    predict_lengths,
    revit_objective,
    token_length_labels,
    train_assigner,
)
from vitnas.revit.evaluate import calibrate, cascade_point, routed_point
from vitnas.revit.inference import lengths_flops
from vitnas.revit.model import (
    _resize_matrix,
    interpolate_pos_embed,
    revit_parameters,
    training_bytes,
)
from vitnas.revit.training import epoch_means

TINY = dict(embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)


def tiny_revit(route="resize", seed=0, **options):
    return build_revit(ReViTConfig(route=route, **{**TINY, **options}), seed=seed).eval()


class At(nn.Module):
    """A ReViT pinned to one length, for the FLOP counter."""

    def __init__(self, model, index):
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x):
        return self.model(x, length=self.index)


def test_default_grid_gives_a_quarter_half_and_all_tokens():
    lengths = length_grid(32, 4)
    assert [(t.grid, t.image_size, t.patch_size) for t in lengths] == [
        (4, 16, 4), (6, 24, 4), (8, 32, 4)]
    patch = length_grid(32, 4, route="patch")
    assert [(t.grid, t.image_size, t.patch_size) for t in patch] == [
        (4, 32, 8), (6, 30, 5), (8, 32, 4)]
    assert [t.tokens for t in length_grid(224, 16, grids=(7, 10, 14))] == [49, 100, 196]


@pytest.mark.parametrize("kwargs, problem", [
    (dict(fractions=(0.0, 1.0)), "fractions"),
    (dict(grids=(4, 9)), "must lie in"),
    (dict(grids=(8,)), "at least two"),
    (dict(route="crop"), "route"),
])
def test_bad_token_grids_are_rejected_with_a_clear_message(kwargs, problem):
    with pytest.raises(ConfigError, match=problem):
        length_grid(32, 4, **kwargs)


@pytest.mark.parametrize("route", ["resize", "patch"])
def test_native_length_output_equals_the_plain_vit(route):
    model = tiny_revit(route)
    plain = VisionTransformer(img_size=32, patch_size=4, num_classes=10, head_dim=None,
                              num_heads=[2], mlp_ratio=[2.0], embed_dim=16, depth=1).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x, length=-1), plain(x))
    assert torch.equal(model(x, length=2), model(x))


def test_resizing_to_the_same_size_changes_nothing():
    model = tiny_revit()
    weight = model.patch_embed.proj.weight
    assert pi_resize_kernel(weight, 4) is weight
    assert interpolate_pos_embed(model.pos_embed, 1, 8, 8) is model.pos_embed


def test_pi_resize_keeps_the_embedding_of_an_upsampled_patch():
    weight = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    resized = pi_resize_kernel(weight, 7)
    patches = torch.randn(8, 3, 16, dtype=torch.float64)
    upsampled = patches @ _resize_matrix(4, 7).T  # (8, 3, 49)
    original = torch.einsum("nci,oci->no", patches, weight.reshape(5, 3, 16))
    after = torch.einsum("nci,oci->no", upsampled, resized.reshape(5, 3, 49))
    assert torch.allclose(original, after, atol=1e-9)


@pytest.mark.parametrize("route", ["resize", "patch"])
def test_analytic_flops_per_length_equal_the_flop_counter(route):
    model = tiny_revit(route)
    x = torch.randn(2, 3, 32, 32)
    for index in range(model.num_lengths):
        model(x, length=index)  # eval mode caches the resized kernel: count the steady state
        assert model.flops_at(index) == measured_flops(At(model, index).eval(), x)
    assert model.flops_at(0) < model.flops_at(1) < model.flops_at(2)


def test_cached_resized_weights_follow_weight_updates():
    model = tiny_revit("patch")
    x = torch.randn(2, 3, 32, 32)
    before = model(x, length=0)
    with torch.no_grad():
        model.patch_embed.proj.weight.mul_(2)
    assert not torch.allclose(before, model(x, length=0))
    fresh = tiny_revit("patch", seed=1)
    model.load_state_dict(fresh.state_dict())
    assert torch.equal(model(x, length=0), fresh(x, length=0))


@pytest.mark.parametrize("route", ["resize", "patch"])
@pytest.mark.parametrize("mode", ["random", "all", "distill"])
def test_every_training_mode_gives_a_finite_loss_with_gradients_at_every_used_length(mode, route):
    model = tiny_revit(route).train()
    objective = revit_objective(mode, model.num_lengths, seed=0)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    calls = []
    original = model.forward
    model.forward = lambda inputs, length=None: calls.append(length) or original(inputs, length)
    loss = objective(model, x, y, 0.1)
    loss.backward()
    assert torch.isfinite(loss) and model.pos_embed.grad.abs().sum() > 0
    if mode == "random":
        assert len(calls) == 1
        return
    # "all" and "distill" train every length: the longest first (the teacher), then the others
    assert calls == [2, 0, 1]
    with torch.no_grad():
        logits = [original(x, length) for length in range(3)]
        expected = sum(F.cross_entropy(z, y, label_smoothing=0.1) for z in logits)
        if mode == "distill":
            teacher = F.softmax(logits[2], dim=-1)
            expected = expected + sum(F.kl_div(F.log_softmax(z, dim=-1), teacher,
                                               reduction="batchmean") for z in logits[:2])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_an_unknown_training_mode_is_refused():
    with pytest.raises(ConfigError, match="training mode"):
        revit_objective("sometimes", 3)


def test_random_mode_draws_the_same_lengths_from_the_same_seed():
    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.calls = tiny_revit().train(), []

        def forward(self, x, length=None):
            self.calls.append(length)
            return self.model(x, length)

    draws = []
    for _ in range(2):
        recorder = Recorder()
        objective = revit_objective("random", 3, seed=5)
        for _ in range(6):
            objective(recorder, torch.randn(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), 0.0)
        draws.append(recorder.calls)
    assert draws[0] == draws[1] and len(set(draws[0])) > 1


def test_labels_are_the_smallest_correct_length_with_a_none_correct_policy():
    correct = torch.tensor([[0, 1, 0, 0],
                            [1, 1, 0, 0],
                            [1, 1, 1, 0]], dtype=torch.bool)
    assert token_length_labels(correct).tolist() == [1, 0, 2, 2]
    assert token_length_labels(correct, "smallest").tolist() == [1, 0, 2, 0]
    assert token_length_labels(correct, "drop").tolist() == [1, 0, 2, -1]
    with pytest.raises(ConfigError, match="policy"):
        token_length_labels(correct, "random")


class KnownDifficultyModel(nn.Module):
    """Image n carries its class in pixel [0, 0, 0] and its difficulty d in pixel [0, 0, 1]
    (after normalisation by mean 0, std 1): length k predicts the class iff k >= d."""

    num_lengths = 3

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, length=None):
        label = x[:, 0, 0, 0].mul(255).round().long()
        difficulty = x[:, 0, 0, 1].mul(255).round().long()
        wrong = (label + 1) % 4
        predicted = torch.where(difficulty <= length, label, wrong)
        return nn.functional.one_hot(predicted, 4).float() + self.dummy


def test_label_extraction_recovers_known_difficulties():
    from vitnas.data import ArrayDataset

    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    difficulty = torch.tensor([0, 2, 1, 3, 1, 0])  # 3 = no length is right
    images = torch.zeros(6, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = labels.to(torch.uint8), difficulty.to(torch.uint8)
    dataset = ArrayDataset(images, labels, mean=(0.0,), std=(1.0,))
    logits = predict_lengths(KnownDifficultyModel(), dataset, batch_size=4)
    assert token_length_labels(correct_by_length(logits, labels)).tolist() == [0, 2, 1, 2, 1, 0]
    assert token_length_labels(correct_by_length(logits, labels), "drop")[3] == -1


def test_bucketed_inference_matches_per_image_inference_in_the_original_order():
    model = tiny_revit()
    x = torch.randn(24, 3, 32, 32)
    chosen = torch.randint(0, 3, (24,), generator=torch.Generator().manual_seed(0))
    assert len(torch.unique(chosen)) == 3
    out = predict_at(model, x, chosen)
    for i in range(len(x)):
        alone = model(x[i:i + 1], length=int(chosen[i]))
        assert torch.allclose(out.logits[i], alone[0], atol=1e-5)
    assert torch.equal(out.length, chosen)


def test_assigner_routes_each_image_through_its_bucket():
    model = tiny_revit()
    assigner = TokenLengthAssigner(AssignerConfig(num_lengths=3, input_size=8)).eval()
    x = torch.randn(12, 3, 32, 32)
    out = bucketed_predict(model, assigner, x, threshold=0.7)
    expected = predict_at(model, x, assigner.assign(x, 0.7))
    assert torch.equal(out.length, expected.length)
    assert torch.allclose(out.logits, expected.logits)


def test_assigner_flops_are_counted_in_every_bucketed_cost():
    model = tiny_revit()
    assigner = TokenLengthAssigner(AssignerConfig(num_lengths=3, input_size=16)).eval()
    assert assigner.flops() == measured_flops(assigner, torch.randn(2, 3, 16, 16))
    x = torch.randn(6, 3, 32, 32)
    out = bucketed_predict(model, assigner, x)
    assert torch.equal(out.flops, lengths_flops(model)[out.length] + assigner.flops())


def coarse_router(price_scale=1.0):
    config = AssignerConfig(num_lengths=3, target="correct", features="coarse",
                            costs=(0.25, 0.5, 1.0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        router = TokenLengthAssigner(config).eval()
    router.platt_scale.mul_(price_scale)
    return router


def test_a_router_on_the_shortest_pass_keeps_it_or_runs_one_more_length():
    model = tiny_revit().eval()
    router = coarse_router()
    x = torch.randn(16, 3, 32, 32)
    coarse = model(x, length=0)
    knob = 0.05
    route = router.assign(coarse, knob)
    out = bucketed_predict(model, router, x, knob)
    assert torch.equal(out.length, route)
    assert torch.allclose(out.logits, predict_at(model, x, route).logits, atol=1e-5)
    costs = lengths_flops(model)
    # the shortest pass is paid once by every image, the chosen longer length on top of it
    expected = torch.where(route > 0, costs[0] + costs[route], costs[0]) + router.flops()
    assert torch.equal(out.flops, expected)
    assert torch.equal(router.spent(costs, route), expected)
    # keeping the shortest answer adds nothing: the Lagrangian prices only the extra pass
    assert router.relative_costs().tolist() == [0.0, 0.5, 1.0]


def test_a_router_on_the_shortest_pass_counts_its_own_flops():
    router = coarse_router()
    mlp = sum(2 * m.in_features * m.out_features for m in router.head if isinstance(m, nn.Linear))
    # the MLP, plus 8 operations per class for the features and 2 per feature to normalise
    assert router.flops() == mlp + 8 * 10 + 2 * router.config.num_coarse
    assert router(torch.randn(5, 10)).shape == (5, 3)
    config = router.config
    assert config.reads_coarse_pass and config.num_coarse == 22


def test_decision_threshold_trades_length_monotonically():
    logits = torch.randn(50, 3)
    assert torch.equal(decide(logits), logits.argmax(-1))
    assert (decide(logits, 1.0) == 2).all()
    lengths = [decide(logits, t).float().mean() for t in (0.1, 0.4, 0.7, 0.95)]
    assert lengths == sorted(lengths)
    with pytest.raises(ConfigError, match="threshold"):
        decide(logits, 0.0)


def test_cascade_matches_its_cached_operating_point():
    model = tiny_revit()
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 10, (40,))
    logits = torch.stack([model(x, length=k) for k in range(3)])
    correct = correct_by_length(logits, y)
    for threshold in (0.0, 0.105, 0.11, 1.0):
        live = cascade_predict(model, x, threshold)
        point = cascade_point(threshold, logits, correct, lengths_flops(model))
        accuracy = 100.0 * float((live.logits.argmax(-1) == y).float().mean())
        assert accuracy == pytest.approx(point.accuracy, abs=0.01)
        assert float(live.flops.double().mean()) == pytest.approx(point.flops)
    everything = cascade_predict(model, x, 1.0)
    assert (everything.length == 2).all()
    assert (everything.flops == sum(model.flops_at(k) for k in range(3))).all()


def test_oracle_route_and_calibration_pick_the_cheapest_point_within_the_loss():
    correct = torch.tensor([[1, 0, 0, 1], [1, 1, 0, 1], [1, 1, 1, 0]], dtype=torch.bool)
    costs = torch.tensor([1, 2, 4])
    oracle = routed_point("oracle", None, correct, costs, token_length_labels(correct))
    assert oracle.accuracy == 100.0 and oracle.flops == pytest.approx((1 + 2 + 4 + 1) / 4)
    fixed = [routed_point("fixed", k, correct, costs, torch.full((4,), k)) for k in range(3)]
    assert calibrate(fixed, full_accuracy=75.0, max_loss=1.0).knob == 1  # 75% at cost 2
    assert calibrate(fixed, full_accuracy=100.0, max_loss=1.0).knob == 1  # none: most accurate


def test_predict_at_rejects_a_wrong_number_of_length_indices():
    with pytest.raises(ConfigError, match="one length index per image"):
        predict_at(tiny_revit(), torch.randn(3, 3, 32, 32), torch.zeros(2, dtype=torch.long))


def test_holdout_and_fold_splits_are_disjoint_balanced_and_seeded():
    labels = torch.arange(100) % 10
    holdout = SplitSpec("holdout", per_class=3, seed=1)
    unseen, seen = holdout.unseen(labels), holdout.seen(labels)
    assert len(unseen) == 30 and torch.bincount(labels[unseen]).tolist() == [3] * 10
    assert set(unseen.tolist()).isdisjoint(seen.tolist()) and len(seen) == 70
    assert torch.equal(unseen, SplitSpec("holdout", per_class=3, seed=1).unseen(labels))
    folds = [SplitSpec("fold", fold=i, folds=4).unseen(labels) for i in range(4)]
    assert sorted(torch.cat(folds).tolist()) == list(range(100))
    with pytest.raises(ConfigError, match="fold"):
        SplitSpec("fold", fold=4, folds=4)
    # a holdout as large as a class would leave nothing (it once trained on 1 image)
    with pytest.raises(ConfigError, match="leaves no training image"):
        SplitSpec("holdout", per_class=10).unseen(labels)


def test_assigner_learns_labels_that_depend_on_the_image():
    torch.manual_seed(0)
    images = torch.randn(256, 3, 16, 16)
    labels = (images[:, 0].mean(dim=(1, 2)) > 0).long() * 2  # bright red -> longest length
    images[:, 0] += (labels.float() - 1).view(-1, 1, 1)
    assigner = TokenLengthAssigner(AssignerConfig(num_lengths=3, input_size=16))
    result = train_assigner(assigner, images, labels, epochs=15, seed=0)
    assert result.train_accuracy > 90


def test_resumable_loop_follows_the_shared_recipe_step_for_step():
    from vitnas.data import get_dataset
    from vitnas.revit.training import fit_resumable, subset
    from vitnas.train import TrainConfig, train_model

    data = get_dataset("synthetic", split="train", n=96)
    data = subset(data, torch.arange(96))
    config = TrainConfig(epochs=2, batch_size=32, seed=3)
    ours, shared = tiny_revit(seed=1), tiny_revit(seed=1)
    fit_resumable(ours, data, config, revit_objective("distill", 3, seed=3))
    train_model(shared, data, config, loss_fn=revit_objective("distill", 3, seed=3))
    for key, value in shared.state_dict().items():
        assert torch.allclose(ours.state_dict()[key], value, atol=1e-6), key


def test_fixed_length_curve_is_the_hull_of_mixtures():
    from vitnas.revit.metrics import cost_at_accuracy, mixture_frontier, ratio_at_equal_accuracy

    # (cost, accuracy); (3, 60) lies below the chord from (2, 58) to (4, 64): a mixture beats it
    points = [(1.0, 50.0), (2.0, 58.0), (3.0, 60.0), (4.0, 64.0), (5.0, 63.0)]
    frontier = mixture_frontier(points)
    assert frontier == [(1.0, 50.0), (2.0, 58.0), (4.0, 64.0)]
    assert cost_at_accuracy(frontier, 61.0) == pytest.approx(3.0)  # half of 2 and 4
    assert cost_at_accuracy(frontier, 40.0) == 1.0  # the cheapest length already reaches it
    assert cost_at_accuracy(frontier, 65.0) is None  # above every fixed length
    assert ratio_at_equal_accuracy(frontier, 1.5, 61.0) == pytest.approx(2.0)


def test_roc_auc_and_the_prior_report():
    from vitnas.revit.metrics import label_report, roc_auc

    positive = torch.tensor([0, 0, 1, 1, 0, 1], dtype=torch.bool)
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9, 0.3, 0.7]), positive) == 1.0
    assert roc_auc(-torch.tensor([0.1, 0.2, 0.8, 0.9, 0.3, 0.7]), positive) == 0.0
    assert roc_auc(torch.zeros(6), positive) == 0.5  # ties count half
    labels = torch.tensor([0] * 80 + [2] * 20)
    everything = torch.ones(100, dtype=torch.bool)
    prior = label_report(torch.zeros(100, dtype=torch.long), labels, torch.zeros(100),
                         labels > 0, everything, resamples=200)
    assert prior["majority_share"] == 80.0 and prior["accuracy_minus_prior"] == 0.0
    perfect = label_report(labels, labels, labels.float(), labels > 0, everything,
                           resamples=200)
    assert perfect["accuracy_minus_prior_ci"][0] > 10 and perfect["needs_more_auc"] == 1.0


def test_margin_targets_soften_the_hard_label_and_keep_probability_mass():
    from vitnas.revit.assigner import soft_targets

    logits = torch.randn(3, 50, 10)
    targets = torch.randint(0, 10, (50,))
    hard = token_length_labels(correct_by_length(logits, targets), "largest")
    for policy in ("largest", "smallest", "drop"):
        soft = soft_targets(logits, targets, "margin", policy, temperature=1.0)
        assert soft.shape == (50, 3) and torch.allclose(soft.sum(1), torch.ones(50), atol=1e-5)
    sharp = soft_targets(logits, targets, "margin", "largest", temperature=1e-4)
    assert torch.equal(sharp.argmax(1), hard)
    loss = soft_targets(logits, targets, "loss", "largest")
    assert torch.allclose(loss[:, 0], logits[0].softmax(-1)[torch.arange(50), targets])


def test_lagrangian_price_trades_length_monotonically():
    from vitnas.revit.assigner import decide_lagrangian

    probabilities = torch.rand(200, 3)
    costs = torch.tensor([0.25, 0.5, 1.0])
    means = [float(decide_lagrangian(probabilities, price, costs).float().mean())
             for price in (0.0, 0.1, 0.3, 1.0, 5.0)]
    assert means == sorted(means, reverse=True) and means[-1] == 0.0
    with pytest.raises(ConfigError, match="price"):
        decide_lagrangian(probabilities, -1.0, costs)


@pytest.mark.parametrize("features", ["pixels", "stats", "both"])
@pytest.mark.parametrize("target", ["hard", "correct"])
def test_assigner_options_route_every_image_and_count_their_flops(features, target):
    config = AssignerConfig(num_lengths=3, input_size=8, target=target, features=features,
                            detail_sizes=(16, 24), costs=(0.25, 0.5, 1.0))
    assigner = TokenLengthAssigner(config).eval()
    x = torch.randn(5, 3, 32, 32)
    route = assigner.assign(x, 0.5 if target == "hard" else 0.05)
    assert route.shape == (5,) and route.min() >= 0 and route.max() <= 2
    assert torch.equal(route, assigner.route(assigner(x), 0.5 if target == "hard" else 0.05))
    if features == "pixels":
        assert assigner.flops() == measured_flops(assigner, torch.randn(2, 3, 8, 8))
        return
    # the statistics add their documented per-value count and a normalisation per statistic;
    # the convolutions (both) and the head are counted as torch counts them
    stats = assigner.num_stats
    expected = 3 * 32 * 32 * (7 + 13 * 2) + 2 * stats
    width = stats
    if features == "both":
        expected += measured_flops(assigner.features, torch.randn(2, 3, 8, 8))
        width += config.widths[-1]
    expected += measured_flops(assigner.head, torch.randn(2, width))
    assert assigner.flops() == expected


def test_platt_scaling_calibrates_per_length_probabilities():
    from vitnas.revit.assigner import fit_platt

    assigner = TokenLengthAssigner(AssignerConfig(target="correct"))
    torch.manual_seed(0)
    truth = torch.rand(400, 3)
    correct = (torch.rand(400, 3) < truth).T  # (K, N)
    overconfident = torch.logit(truth) * 4
    before = nn.functional.binary_cross_entropy(torch.sigmoid(overconfident), correct.float().T)
    fit_platt(assigner, overconfident, correct)
    after = nn.functional.binary_cross_entropy(assigner.probabilities(overconfident),
                                               correct.float().T)
    assert after < before and float(assigner.platt_scale.mean()) == pytest.approx(0.25, abs=0.1)


def test_epoch_means_average_each_epochs_steps():
    assert epoch_means([4.0, 2.0, 1.0, 3.0, 5.0, 7.0], 3) == [3.0, 2.0, 6.0]
    assert epoch_means([1.0, 2.0, 4.0], 2) == [1.5, 4.0]  # uneven: the first epoch gets more
    assert epoch_means([], 3) == [] and epoch_means([1.0], 0) == []


@pytest.mark.parametrize("config", [
    ReViTConfig(),
    ReViTConfig(depth=3, embed_dim=48, num_heads=(1, 2, 3), mlp_ratio=(1.0, 2.5, 4.0),
                head_dim=16),
    ReViTConfig(route="patch", grids=(2, 4, 8), pool="mean", cls_token=False),
    ReViTConfig(depth=4, num_heads=(3, 6, 3, 6), mlp_ratio=(4, 4, 2, 2)),
])
def test_the_weight_count_without_building_is_the_built_models(config):
    """The memory check counts weights on the meta device, one block per kind of layer."""
    assert revit_parameters(config) == sum(p.numel() for p in build_revit(config).parameters())
    weights = revit_parameters(config) * 16  # float32 weights, gradients, two AdamW moments
    assert training_bytes(config, 1) > weights
    assert training_bytes(config, 8) - training_bytes(config, 1) == (
        7 * config.lengths()[-1].tokens * config.embed_dim * config.depth * 4)


def test_random_mode_resumes_its_length_draws_with_the_weights(tmp_path, monkeypatch):
    """The objective's generator is part of the saved state: a random-mode run killed after an
    epoch and resumed draws the lengths an uninterrupted run draws, so its weights are equal."""
    import vitnas.train as train_module
    from vitnas.data import SyntheticDataset
    from vitnas.revit.training import fit_resumable
    from vitnas.train import TrainConfig

    data = SyntheticDataset(96, num_classes=10, image_size=32, seed=0)
    config = TrainConfig(epochs=3, batch_size=32)

    def run(state, resume=False):
        model = tiny_revit().train()
        objective = revit_objective("random", model.num_lengths, seed=0)
        fit = fit_resumable(model, data, config, objective, state, resume, {"run": 1})
        return model, fit

    whole, whole_fit = run(tmp_path / "whole.state.pt")
    saved = train_module.save

    def killed_after_first_epoch(path, payload):
        saved(path, payload)
        if payload["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run.state.pt")
    monkeypatch.setattr(train_module, "save", saved)
    resumed, resumed_fit = run(tmp_path / "run.state.pt", resume=True)
    assert resumed_fit.resumed_from == 3 and resumed_fit.epochs_done == whole_fit.epochs_done == 3
    assert resumed_fit.losses == whole_fit.losses
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
