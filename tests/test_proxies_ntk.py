import dataclasses
import math
import re

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.proxies import expand_proxy_specs, get_proxy, list_proxies, score_architecture
from vitnas.proxies.base import ProxyContext
from vitnas.proxies.dss import DSS
from vitnas.proxies.kernel import KernelSpec, empirical_ntk, parameter_groups, spectrum
from vitnas.proxies.lga import label_gradient_alignment, label_kernel
from vitnas.proxies.vintk import FourierViews, ViNTKConfig, frequency_split
from vitnas.spaces import get_space

REQUIRED = ["vintk", "ntk_cond", "ntk_trace", "ntk_mgm", "ntk_frobenius", "ntk_eigen",
            "ntk_regression", "linear_regions", "lga", "dss", "synflow", "snip", "grasp",
            "fisher", "grad_norm", "jacov", "nwot", "zen", "l2_norm", "params", "flops"]


def tiny(name, seed=1):
    space = get_space(name, img_size=16)
    arch = space.sample(seed)
    return space, arch, space.build(arch, seed=0).train()


def batch(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 4


def test_every_registered_name_exists():
    assert set(REQUIRED) <= set(list_proxies())


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "pit-tiny-micro", "nasbench201"])
@pytest.mark.parametrize("scalar", ["logits_sum", "true_logit", "loss"])
def test_batched_kernel_matches_naive_loop(name, scalar):
    """``method="batched"`` explicitly: on the BatchNorm cell (NB201) ``auto`` is the loop
    itself, and only the explicit method exercises the vmap-of-vjp pullback."""
    _, _, model = tiny(name)
    x, y = batch()
    batched = empirical_ntk(model, x, y, KernelSpec(scalar=scalar, method="batched"))
    naive = empirical_ntk(model, x, y, KernelSpec(scalar=scalar, method="loop"))
    assert (batched - naive).abs().max() <= 1e-5 * naive.abs().max()
    assert batched.dtype == torch.float64 and torch.equal(batched, batched.T)


def test_batchnorm_kernel_couples_the_samples():
    """The loop and the pullback must both see batch statistics: the coupled kernel differs
    from the per-sample kernel of the same network in eval mode (running statistics)."""
    _, _, model = tiny("nasbench201")
    x, y = batch()
    coupled = empirical_ntk(model, x, y, KernelSpec(method="batched"))
    uncoupled = empirical_ntk(model.eval(), x, y, KernelSpec(method="loop"))
    assert (coupled - uncoupled).abs().max() > 1e-3 * coupled.abs().max()


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "nasbench201"])
def test_chunked_and_memory_bounded_kernels_match_whole_batch(name):
    """``method="batched"``, where ``chunk`` splits the vmap (``auto`` takes the loop on
    NB201, which ignores it), and a budget of about three parameter groups."""
    _, _, model = tiny(name)
    x, y = batch()
    whole = empirical_ntk(model, x, y, KernelSpec(method="loop"))
    total = sum(p.numel() for p in model.parameters())
    budget = total * x.shape[0] * 12 // 3
    for spec in (KernelSpec(method="batched", chunk=3), KernelSpec(method="batched", chunk=3,
                                                                   max_memory=budget)):
        chunked = empirical_ntk(model, x, y, spec)
        assert (whole - chunked).abs().max() <= 1e-5 * whole.abs().max()


def test_parameter_groups_respect_the_memory_budget():
    params = {f"p{i}": torch.zeros(1000) for i in range(10)}
    groups = parameter_groups(params, batch=4, max_memory=4 * 12 * 2500)
    assert sum(len(g) for g in groups) == 10
    assert all(sum(params[n].numel() for n in g) <= 2500 for g in groups)


def test_kernel_leaves_model_unchanged():
    _, _, model = tiny("nasbench201")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    empirical_ntk(model, *batch())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_same_seed_gives_bit_identical_scores():
    space, arch, _ = tiny("autoformer-tiny-micro")
    x, y = batch()
    specs = ["vintk", "ntk_cond", "lga", "dss", "linear_regions"]
    first = [r.score for r in score_architecture(space, arch, specs, x, y, seed=3)]
    second = [r.score for r in score_architecture(space, arch, specs, x, y, seed=3)]
    assert first == second
    other = [r.score for r in score_architecture(space, arch, specs, x, y, seed=4)]
    assert first != other


def test_direction_normalises_scores():
    space, arch, _ = tiny("autoformer-tiny-micro")
    x, y = batch()
    (cond,) = score_architecture(space, arch, ["ntk_cond"], x, y)
    assert cond.score == -cond.raw and cond.raw > 0
    (trace,) = score_architecture(space, arch, ["ntk_trace"], x, y)
    assert trace.score == trace.raw


def test_singular_kernel_is_clamped_with_a_warning():
    space, arch, model = tiny("autoformer-tiny-micro")
    x, y = batch()
    x[1] = x[0]  # two identical inputs: Theta is singular
    ctx = ProxyContext(x, y, space.num_classes)
    result = get_proxy("ntk_cond")(model, ctx)
    assert math.isfinite(result.score)
    assert any("clamped" in w for w in result.warnings)


def test_nan_kernel_gives_nan_and_a_warning_not_a_crash():
    space, arch, model = tiny("autoformer-tiny-micro")
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    x, y = batch()
    for spec in ("ntk_cond", "vintk", "ntk_eigen"):
        result = get_proxy(spec)(model, ProxyContext(x, y, space.num_classes))
        assert math.isnan(result.score)
        assert result.warnings
    assert not spectrum(torch.full((3, 3), float("nan"))).finite


def test_proxy_spec_strings():
    proxy = get_proxy("vintk:sigma=10,mode=joint,features=32")
    assert proxy.config.sigma == 10.0 and proxy.config.mode == "joint"
    assert proxy.spec == "vintk:mode=joint,features=32"
    assert expand_proxy_specs("vintk:sigma=1,mode=joint,dss,lga:epochs=0") == [
        "vintk:sigma=1,mode=joint", "dss", "lga:epochs=0"]
    assert expand_proxy_specs("registered") == [n for n in list_proxies() if n != "brief"]
    assert len(expand_proxy_specs("all")) > len(list_proxies())
    with pytest.raises(ConfigError, match="no option 'sigmaa'"):
        get_proxy("vintk:sigmaa=3")
    with pytest.raises(ConfigError, match="not a valid (finite )?float"):
        get_proxy("vintk:sigma=abc")
    with pytest.raises(ConfigError, match="unknown proxy"):
        get_proxy("ntk_magic")
    with pytest.raises(ConfigError, match="key=value"):
        get_proxy("vintk:sigma")


@pytest.mark.parametrize("spec, message", [
    ("brief:lr=1e308", "lr=1e308 of proxy brief is past its ceiling of 10"),
    ("lga:epochs=1e308", "epochs=1e308 of proxy lga is past its ceiling of 1,000"),
    ("swap:mu=1e308", "past its ceiling of 1,000,000,000"),
    ("vintk:mode=learn,bands=1000000", "bands=1000000 of proxy vintk is past its ceiling of 64"),
    ("vintk:frequency=1e308", "past its ceiling"),
    ("brief:steps=99999999999", "past its ceiling of 100,000"),
    ("lga:epochs=0,dataset=foo", "unknown dataset 'foo'"),  # refused even when unread
    ("brief:dataset=foo", "unknown dataset 'foo'"),
    ("zen:repeat=1000000", "past its ceiling of 1,000"),
    ("vintk:sigma=1_0", "not a valid finite float"),
    ("vintk:features=\u0666\u0664", "not a valid int"),
    ("linear_regions:samples=-1", "samples >= 0 and image_size >= 0"),
    ("token_entropy:sites=qkv+fc1+qkv", "each once"),
    ("ens:params+", "is an ensemble, a scoreboard row"),
    ("logrank:nwot+zen", "use it in `vitnas bench correlate --proxies`"),
])
def test_option_values_past_a_ceiling_or_spelled_oddly_are_refused_where_parsed(spec, message):
    with pytest.raises(ConfigError, match=message):
        get_proxy(spec)


def test_every_numeric_option_at_its_ceiling_is_still_accepted():
    """A ceiling refuses values past it, never the ceiling itself (and the default is below)."""
    from vitnas.proxies.base import PROXIES

    for name in list_proxies():
        config = PROXIES.get(name).Config
        for f in dataclasses.fields(config):
            most = f.metadata.get("max")
            if most is None:
                continue
            assert f.default <= most, (name, f.name)
            assert getattr(get_proxy(f"{name}:{reading(name, f.name)}{f.name}={most!r}").config,
                           f.name) == most


# settings in which a proxy reads its conditional options (see each config's read_options)
READING_SETTINGS = {"vintk": ("combine=sum", "mode=learn"), "lga": ("epochs=1",),
                    "swap": ("mu=1",), "brief": ("schedule=warmup_cosine",),
                    "ntk_trace": ("outputs=scalar",)}


def reading(name: str, option: str) -> str:
    """Options that put ``name`` in a setting that reads ``option`` (an option the setting
    does not read is refused), e.g. ``mode=learn,`` for vintk's ``ridge``."""
    for setting in ("", *READING_SETTINGS.get(name, ())):
        config = get_proxy(f"{name}:{setting}").config
        if option in getattr(config, "read_options", lambda: {option})():
            return setting + "," if setting else ""
    raise AssertionError(f"no setting of {name} reads {option}")


def test_linear_regions_at_an_input_size_the_vit_does_not_take_is_one_line():
    space = get_space("autoformer-tiny-micro")
    arch = space.sample(0)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with pytest.raises(ConfigError, match="does not take 7 px inputs"):
        score_architecture(space, arch, ["linear_regions:image_size=7"], x, y, seed=0)


@pytest.mark.parametrize("options", [
    "", "mode=band", "mode=joint", "mode=align", "view=pixel", "view=highpass",
    "metric=eigen", "metric=trace", "combine=high", "combine=ratio", "combine=sum,weight=0.5",
])
def test_every_vintk_variant_scores_finite(options):
    space, arch, _ = tiny("autoformer-tiny-micro")
    x, y = batch()
    spec = "vintk" + (":" + options if options else "")
    (result,) = score_architecture(space, arch, [spec], x, y)
    assert math.isfinite(result.score)


def test_fourier_features_are_fixed_by_their_seed():
    a = FourierViews(ViNTKConfig(), 3).coordinate_pattern(8, 8)
    b = FourierViews(ViNTKConfig(), 3).coordinate_pattern(8, 8)
    c = FourierViews(ViNTKConfig(fourier_seed=1), 3).coordinate_pattern(8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_frequency_split_is_a_partition():
    x, _ = batch()
    low, high = frequency_split(x, 0.25)
    assert torch.allclose(low + high, x, atol=1e-5)
    constant = torch.ones(1, 3, 8, 8)
    assert frequency_split(constant, 0.25)[1].abs().max() < 1e-5


def test_frequency_split_puts_a_pure_cosine_on_its_side_of_the_cutoff():
    # the partition above holds for any filter; a cosine at half Nyquist (radius 0.5) pins it
    x = torch.cos(2 * math.pi * 0.25 * torch.arange(8.0)).expand(1, 1, 8, 8)
    low, high = frequency_split(x, 0.4)
    assert low.abs().max() < 1e-5 and torch.allclose(high, x, atol=1e-5)
    low, high = frequency_split(x, 0.6)
    assert torch.allclose(low, x, atol=1e-5) and high.abs().max() < 1e-5


def test_vintk_high_frequency_views_differ_in_spectrum():
    x, _ = batch()
    views = FourierViews(ViNTKConfig(view="highpass"), 3)
    high = views.high_view(x)
    low_energy = frequency_split(high, 0.25)[0].pow(2).sum()
    assert low_energy < 1e-6 * high.pow(2).sum()


def test_lga_known_answers():
    labels = torch.tensor([0, 0, 1, 1, 2])
    target = label_kernel(labels)
    assert label_gradient_alignment(target, labels, "global") == pytest.approx(1.0)
    assert label_gradient_alignment(-target, labels, "cka") == pytest.approx(-1.0)
    assert label_gradient_alignment(torch.eye(5, dtype=torch.float64) * 3 + target, labels,
                                    "global") > 0.5


def test_lga_after_training_differs_from_init():
    space, arch, _ = tiny("autoformer-tiny-micro")
    x, y = batch()
    init, trained = score_architecture(
        space, arch,
        ["lga", "lga:epochs=1,dataset=synthetic,train_samples=64,batch_size=32"], x, y)
    assert math.isfinite(trained.score) and trained.score != init.score


def test_dss_ignores_weight_signs_and_uses_tags():
    space, arch, model = tiny("autoformer-tiny-micro")
    x, y = batch()
    score = DSS()(model, ProxyContext(x, y, 10)).score
    flipped = space.build(arch, seed=0)
    with torch.no_grad():
        for p in flipped.parameters():
            p.neg_()
    assert DSS()(flipped, ProxyContext(x, y, 10)).score == pytest.approx(score, rel=1e-9)
    untagged = space.build(arch, seed=0)
    for block in untagged.blocks:
        del block.attn.proj.vitnas_role
    assert DSS()(untagged, ProxyContext(x, y, 10)).score != pytest.approx(score, rel=1e-6)


def test_bad_kernel_options():
    with pytest.raises(ConfigError, match="scalar"):
        get_proxy("ntk_cond:scalar=max")
    with pytest.raises(ConfigError, match="centring"):
        get_proxy("lga:centring=none")


@pytest.mark.parametrize("spec, message", [
    ("lga:dataset=fashion-mnist", "lga with epochs=0 does not read dataset=fashion-mnist"),
    ("lga:train_samples=100,recipe=shared", "does not read train_samples=100, recipe=shared"),
    ("brief:warmup=0.2", "brief with metric=val_acc, schedule=constant does not read warmup=0.2"),
    ("swap:sigma=4", "swap with mu=0 does not read sigma=4.0"),
    ("swap:param_unit=millions", "does not read param_unit=millions"),
    ("ntk_trace:scalar=loss", "ntk_trace with outputs=all does not read scalar=loss"),
    ("ntk_trace:outputs=scalar,probes=2", "with outputs=scalar does not read probes=2"),
])
def test_options_the_setting_does_not_read_are_refused(spec, message):
    """Each would be silently ignored: the same computation as the spec without it."""
    with pytest.raises(ConfigError, match=re.escape(message) + ": leave it out"):
        get_proxy(spec)


@pytest.mark.parametrize("spec", [
    "lga:epochs=1,dataset=fashion-mnist,train_samples=100,batch_size=64,disjoint=false",
    "lga:epochs=0,dataset=cifar10",  # at its default: harmless, and commands spell it
    "brief:window=50,lga_samples=8",  # one run reads every metric (train_with_checkpoints)
    "brief:schedule=warmup_cosine,warmup=0.2", "brief:metric=train_loss,eval_samples=1000",
    "swap:mu=500,sigma=4,param_unit=millions", "ntk_trace:probes=0",
    "ntk_trace:outputs=scalar,scalar=loss,chunk=8",
])
def test_options_the_setting_reads_are_accepted(spec):
    proxy = get_proxy(spec)
    options = dict(item.split("=") for item in spec.partition(":")[2].split(","))
    assert set(options) <= proxy.config.read_options() | {"dataset"}
    assert set(proxy.config.readers()) == {f.name for f in dataclasses.fields(proxy.config)}
