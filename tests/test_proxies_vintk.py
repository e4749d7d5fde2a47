import math
import re

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.proxies import expand_proxy_specs, get_proxy, score_architecture
from vitnas.proxies.base import ProxyContext
from vitnas.proxies.vintk import (
    ALL_VARIANTS,
    VARIANTS,
    VARIANTS_V2,
    FourierViews,
    ViNTKConfig,
    decay_rate,
    effective_rank,
    frequency_kernel,
    learnability,
    projection_targets,
    spectrum_statistic,
)
from vitnas.spaces import get_space


def tiny(seed=1):
    space = get_space("autoformer-tiny-micro", img_size=16)
    return space, space.sample(seed)


def batch(n=8, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 4


def line_batch(n=32, seed=0):
    """Images x_i = t_i u on a line: every 1-D projection is +-t, so a target's frequency in
    the batch is known exactly (f cycles per standard deviation of t)."""
    direction = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(seed))
    t = torch.linspace(0, 1, n)
    return t.view(-1, 1, 1, 1) * direction


def spectral_centroid(kernel):
    """Mean DCT index of the kernel's energy along the (sorted) line: c_k^T K c_k weighted."""
    n = kernel.shape[0]
    i = torch.arange(n, dtype=torch.float64)
    basis = torch.stack([torch.cos(math.pi * k * (i + 0.5) / n) for k in range(n)], dim=1)
    basis = basis / basis.norm(dim=0)
    energy = torch.einsum("ik,ij,jk->k", basis, kernel, basis).clamp_min(0)
    return float((energy * torch.arange(n)).sum() / energy.sum())


def orthonormal_with_constant(n, seed=0):
    """An orthonormal basis whose first column is the constant vector."""
    g = torch.Generator().manual_seed(seed)
    start = torch.cat([torch.ones(n, 1), torch.randn(n, n - 1, generator=g)], dim=1).double()
    q = torch.linalg.qr(start)[0]
    return q * torch.sign(q[0, 0])


def test_every_new_variant_is_finite_and_deterministic():
    # Scored together, as the scoreboard does: the variants share three kernels.
    space, arch = tiny()
    x, y = batch(n=6)
    first = score_architecture(space, arch, list(VARIANTS_V2), x, y, seed=2)
    second = score_architecture(space, arch, list(VARIANTS_V2), x, y, seed=2)
    for a, b in zip(first, second):
        assert math.isfinite(a.score) and a.score == b.score, a.proxy
    assert len({round(r.score, 9) for r in first}) > len(first) // 2  # modes differ


def test_align_target_moves_to_high_frequencies_as_frequency_grows():
    x = line_batch()
    centroids = [spectral_centroid(FourierViews(ViNTKConfig(frequency=f), 3).input_kernel(x))
                 for f in (0.125, 0.25, 0.5, 1.0, 2.0)]
    assert centroids == sorted(centroids)
    assert centroids[0] < 1.0 < centroids[2] < 5.0 < centroids[4]
    # A Gaussian in t of width 1 / (2 pi f): its DCT spectrum widens in proportion to f.
    assert centroids[3] / centroids[2] == pytest.approx(2.0, rel=0.2)


def test_align_target_is_a_property_of_the_batch_not_of_the_random_draw():
    # The old target (2-D projection, B ~ N(0, sigma^2)) was a different random matrix per seed.
    x = line_batch()
    a = FourierViews(ViNTKConfig(fourier_seed=0), 3).input_kernel(x)
    b = FourierViews(ViNTKConfig(fourier_seed=1), 3).input_kernel(x)
    off = ~torch.eye(x.shape[0], dtype=torch.bool)
    assert torch.corrcoef(torch.stack([a[off], b[off]]))[0, 1] > 0.99


def test_align_target_sees_a_real_batch_geometry_at_low_frequency_only():
    # Four groups of near-duplicate images in 768 dimensions: the low-frequency target groups
    # them; the high-frequency one keeps only the diagonal (each image its own neighbourhood).
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 3, 16, 16, generator=g)
    x = centres.repeat_interleave(8, dim=0) + 0.1 * torch.randn(32, 3, 16, 16, generator=g)
    groups = torch.arange(32) // 8
    same = groups.view(-1, 1) == groups.view(1, -1)
    off = ~torch.eye(32, dtype=torch.bool)
    low = FourierViews(ViNTKConfig(frequency=0.1), 3).input_kernel(x)
    high = FourierViews(ViNTKConfig(frequency=8.0), 3).input_kernel(x)
    assert low[same & off].min() > 0.9 and low[~same].max() < 0.8
    assert torch.allclose(high, torch.eye(32, dtype=torch.float64), atol=1e-6)


def test_projection_targets_are_centred_sinusoids_of_the_batch():
    x = line_batch()
    targets = projection_targets(x, 1.0, draws=3, seed=0)
    assert targets.shape == (32, 6)
    assert torch.allclose(targets[:, :3].pow(2) + targets[:, 3:].pow(2),
                          torch.ones(32, 3, dtype=torch.float64))


def test_learnability_on_a_kernel_whose_eigenvectors_are_the_targets():
    n = 6
    q = orthonormal_with_constant(n)
    values = torch.tensor([50.0, 4.0, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    theta = q @ torch.diag(values) @ q.T
    delta = 0.5 * (4 + 3 + 2 + 1) / (n - 1)  # the constant mode is centred away
    for k in range(1, n):
        expected = float(values[k] / (values[k] + delta))
        assert learnability(theta, q[:, k : k + 1], ridge=0.5) == pytest.approx(expected)
    mixed = q[:, 1:2] + q[:, 4:5]
    expected = (4 / (4 + delta) + 1 / (1 + delta)) / 2
    assert learnability(theta, mixed, ridge=0.5) == pytest.approx(expected)
    flat = q @ torch.diag(torch.tensor([9.0] + [1.0] * (n - 1), dtype=torch.float64)) @ q.T
    assert learnability(flat, torch.randn(n, 2).double(), ridge=1.0) == pytest.approx(0.5)


def test_spectrum_statistics_known_answers():
    assert effective_rank(torch.ones(5)) == pytest.approx(5.0)
    assert effective_rank(torch.tensor([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    ks = torch.arange(1, 11, dtype=torch.float64)
    assert decay_rate(ks.pow(-2.0)) == pytest.approx(-2.0)
    n = 5
    q = orthonormal_with_constant(n)
    theta = q @ torch.diag(torch.tensor([100.0, 2.0, 2.0, 2.0, 2.0], dtype=torch.float64)) @ q.T
    assert spectrum_statistic(theta, "erank", 10) == pytest.approx(1.0)  # constant mode ignored
    assert spectrum_statistic(theta, "trace_per_param", 10) == pytest.approx(math.log(108 / 50))
    assert spectrum_statistic(theta, "cond", 10) == pytest.approx(-math.log(50.0))
    assert spectrum_statistic(theta * 7, "erank", 10) == pytest.approx(1.0)


def test_encoded_inputs_keep_shape_and_scale_and_change_content():
    x, _ = batch()
    for encode in ("pixel", "patch"):
        views = FourierViews(ViNTKConfig(encode=encode), 3)
        encoded = views.encoded(x, patch=4)
        assert encoded.shape == x.shape
        assert encoded.std() == pytest.approx(float(x.std()), rel=1e-3)
        assert torch.corrcoef(torch.stack([encoded.flatten(), x.flatten()]))[0, 1].abs() < 0.5
    with pytest.raises(ConfigError, match="tiles"):
        FourierViews(ViNTKConfig(encode="patch"), 3).encoded(x, patch=5)


def test_patch_encoding_without_patches_is_nan_with_a_warning():
    space = get_space("nasbench201")
    x, y = batch(n=4)
    (result,) = score_architecture(space, space.sample(0), ["vintk:mode=spectrum,encode=patch"],
                                   x, y)
    assert math.isnan(result.score) and "encode=patch" in result.warnings[0]


def test_new_modes_reuse_the_shared_batch_kernel():
    space, arch = tiny()
    x, y = batch()
    model = space.build(arch, seed=0)
    ctx = ProxyContext(x, y, space.num_classes)
    get_proxy("ntk_frobenius")(model, ctx)
    kernels = len(ctx.cache)
    for spec in ("vintk:mode=learn", "vintk:mode=spectrum", "vintk:mode=align"):
        get_proxy(spec)(model, ctx)
    assert len(ctx.cache) == kernels


def test_original_variants_keep_their_store_keys():
    old = ("vintk:scalar=logits_sum,params=all,method=auto,max_memory=2147483648,chunk=0,"
           "mode=joint,view=coord,sigma=10.0,features=64,alpha=1.0,cutoff=0.25,metric=cond,"
           "combine=sum,weight=1.0,fourier_seed=0")
    assert get_proxy("vintk:mode=joint,combine=sum").full_spec == old
    # modes that combine nothing ignore combine and weight, so their keys do not move with them
    assert get_proxy("vintk:mode=joint").full_spec == old
    assert get_proxy("vintk:mode=spectrum,combine=sum,weight=1").full_spec == \
        get_proxy("vintk:mode=spectrum").full_spec
    view = get_proxy("vintk").full_spec  # today's default reads combine
    assert "mode=view" in view and "combine=high" in view
    assert view != get_proxy("vintk:combine=sum").full_spec
    assert "frequency" not in get_proxy("vintk:mode=band").full_spec
    assert "frequency=0.5" in get_proxy("vintk:mode=align").full_spec
    assert "ridge=0.01" in get_proxy("vintk:mode=learn,ridge=0.01").full_spec


@pytest.mark.parametrize("spec, unread", [
    ("vintk:mode=band,sigma=1.0", "sigma=1.0"),           # band filters the image itself
    ("vintk:mode=band,ridge=0.01", "ridge=0.01"),         # only learn fits a ridge
    ("vintk:weight=2", "weight=2.0"),                     # the default combine=high weighs nothing
    ("vintk:mode=view,view=highpass,alpha=3", "alpha=3.0"),  # highpass adds no pattern
    ("vintk:mode=view,view=pixel,cutoff=0.5", "cutoff=0.5"),  # only highpass and band cut
    ("vintk:combine=ratio,metric=eigen", "metric=eigen"),     # a ratio of traces
    ("vintk:mode=align,sigma=1.0", "sigma=1.0"),          # the old grid's silent duplicate
    ("vintk:mode=spectrum,combine=ratio,weight=3", "combine=ratio, weight=3.0"),
    ("vintk:mode=spectrum,features=8", "features=8"),     # nothing encoded, no features
    ("vintk:mode=joint,stat=decay", "stat=decay"),
])
def test_options_a_mode_does_not_read_are_refused(spec, unread):
    with pytest.raises(ConfigError, match=f"does not read {re.escape(unread)}: leave it out"):
        get_proxy(spec)


@pytest.mark.parametrize("spec", [
    "vintk:mode=band,view=coord,sigma=10",                 # unread but at the default: the grids
    "vintk:mode=align,combine=sum,weight=1.0",             # keyed values of non-combining modes
    "vintk:mode=band,cutoff=0.5,combine=sum,weight=2",
    "vintk:mode=view,view=highpass,cutoff=0.4",
    "vintk:mode=joint,view=pixel,sigma=3,alpha=2,features=16,fourier_seed=5",
    "vintk:mode=learn,fourier_seed=4,frequency=2,bands=2,draws=3,ridge=0.5,score=mean",
    "vintk:mode=spectrum,encode=patch,sigma=3,features=16,stat=decay",
    "vintk:mode=align,encode=pixel,sigma=3,frequency=0.2",
])
def test_options_a_mode_reads_are_accepted(spec):
    config = get_proxy(spec).config
    given = dict(item.split("=") for item in spec.split(":")[1].split(","))
    unread = {key for key, value in given.items() if key not in config.read_options()}
    assert unread <= {"view", "sigma", "combine", "weight"}  # only the default/keyed ones above


def test_variant_grids_parse_and_expand():
    assert len(set(ALL_VARIANTS)) == len(ALL_VARIANTS) == len(VARIANTS) + len(VARIANTS_V2)
    for spec in ALL_VARIANTS:
        get_proxy(spec)
    assert expand_proxy_specs("vintk-variants") == list(ALL_VARIANTS)
    with pytest.raises(ConfigError, match="stat"):
        get_proxy("vintk:mode=spectrum,stat=magic")
    with pytest.raises(ConfigError, match="frequency > 0"):
        get_proxy("vintk:mode=learn,frequency=0")


def test_fourier_seed_takes_the_range_every_seed_takes():
    """Like --seed, a negative or 64-bit-overflowing draw seed is refused (the derived draws
    add 1 and 2, so the top two seeds are refused too); the ends that fit are accepted."""
    get_proxy("vintk:fourier_seed=0")
    get_proxy(f"vintk:fourier_seed={2**63 - 3}")
    for bad in (-1, 2**63 - 2, 2**64):
        with pytest.raises(ConfigError, match="fourier_seed must be an integer in 0..2"):
            get_proxy(f"vintk:fourier_seed={bad}")


def test_readers_name_the_modes_that_read_each_option():
    readers = ViNTKConfig.readers()
    assert readers["ridge"] == "mode=learn" and readers["stat"] == "mode=spectrum"
    assert readers["chunk"] == readers["mode"] == "always"
    assert "band" not in readers["sigma"] and "align" in readers["sigma"]  # align: when encoded
    for option, modes in readers.items():  # each listed mode reads the option in some setting
        for mode in ([] if modes == "always" else modes.removeprefix("mode=").split("|")):
            assert any(option in ViNTKConfig(mode=mode, view=view, encode=encode,
                                             combine=combine).read_options()
                       for view in ("coord", "highpass") for encode in ("none", "pixel")
                       for combine in ("sum", "high"))


def test_frequency_kernel_on_two_points_is_the_gaussian_of_their_spread():
    # x = +-1: squared distance 4, spread (unbiased) 2, so exp(-2 pi^2 f^2 * 4 / 2)
    kernel = frequency_kernel(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1), 0.1)
    assert float(kernel[0, 1]) == pytest.approx(math.exp(-4 * math.pi**2 * 0.01))


def test_learn_ratio_is_the_log_of_the_top_band_over_the_bottom_band():
    # frequency 0.5 in 3 bands: 0.5 over 0.125, not the other way round
    torch.manual_seed(0)
    x = torch.randn(16, 3, 8, 8)
    theta = frequency_kernel(x, 0.1)
    ctx = ProxyContext(x, torch.zeros(16, dtype=torch.long), 10)
    fits = [learnability(theta, projection_targets(x, f, 8, 1), 0.1) for f in (0.5, 0.25, 0.125)]
    score = get_proxy("vintk:mode=learn,score=ratio").learn_score(theta, ctx)
    assert score == pytest.approx(math.log(fits[0] / fits[-1]), rel=1e-9)
    assert score < 0 and ctx.warnings == []


def test_band_ratio_combines_high_over_low_trace():
    ctx = ProxyContext(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 2)
    proxy = get_proxy("vintk:mode=band,combine=ratio")
    assert proxy.combine(torch.eye(4), math.e * torch.eye(4), ctx) == pytest.approx(1.0, abs=1e-6)
