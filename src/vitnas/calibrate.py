"""Calibration to the user's task: a small ranking model fitted on k trained architectures.

Which shape count ranks trained ViTs best depends on the task (issue 23: CIFAR-100 with
distillation follows depth, Flowers and Chaoyang follow width and #params), so a user with k
trained architectures of their own (``vitnas bench build``, or any benchmark file) can fit a
ranker to them and search with it (``vitnas search --ranker FILE``).

The trap is the small k: ten labels are too few to choose among correlated shape counts, and a
calibrator that follows them blindly ranks *worse* than #params wherever #params is already
good. So the ranker shrinks toward a strong prior, #params, and departs from it only when the
k labels clearly say so:

- **Features** are scores of proxy specs (shape baselines such as ``params``, ``depth``,
  ``width``, ``logsize``, and any cheap proxy) that a search can compute for one new candidate.
  Each is mapped through a monotone transform (``log`` when it is positive on all k, which makes
  a feature's units, e.g. a 32 px versus a 224 px space, a shift that no ranking sees; the
  identity otherwise) and standardised with the k's mean and standard deviation. Standardised
  values rather than ranks against the k: a candidate outside the k's range (a search explores
  beyond them) keeps its order instead of saturating at the top rank.
- **Target**: the k labels' ranks, standardised (ranking is the goal, and an outlier label,
  e.g. a failed training, moves a rank by one).
- **Prior**: the standardised log #params, with slope ``rho`` = its correlation with the target.
- **Fit**: a ridge regression of the target on every feature whose penalty pulls the weights
  toward the prior's (``rho`` on #params, 0 elsewhere) rather than toward zero, with every
  weight kept non-negative (features are oriented higher-is-better, so a weight may grow or
  vanish, never reverse a feature: a noisy label's k often rank #params backwards by chance).
  A strong penalty gives the prior back. Its strength is chosen among ``ALPHAS`` (multiples of
  k) by leave-one-out Kendall tau on the k (the whole fit, standardisation included, is
  repeated without each architecture; ties go to the stronger penalty).
- **The choice**: the fitted model is used only when its leave-one-out ranking beats the prior's
  (a higher leave-one-out tau) with ``evidence >= threshold``, a paired sign statistic over the
  pairs of the k: each pair scores +1 if a ranking orders it as the labels do, -1 if not, and
  ``evidence`` is the sum of the per-pair differences over the root of the sum of their squares
  (so a win over many disputed pairs counts for more than a win over a few). The default
  threshold, 0 (a leave-one-out win of any size), was chosen on the ViT-Bench-101 AutoFormer
  dev half only (``benchmarks/calibration_simulation.py``): the non-negative weights already
  keep the fitted model near #params where the labels are noisy, and a higher margin only gave
  up gain there. Pass a higher ``threshold`` to demand more.

Measured (``results/calibration/simulation.md``, 200 draws, k = 10, tau on the other
architectures of ViT-Bench-101): never more than 0.006 below #params on any KD label of either
space; +0.13 on AutoFormer CIFAR-100 KD (depth matters there), within +-0.01 of #params on the
other five KD labels, where neither shape nor the zero-cost proxies hold information that ten
labels can find.

A ranker is a plain dataclass saved as JSON (``format`` and ``version`` checked on load, never a
pickle), and it scores one architecture from its feature values: ``Ranker.score``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitnas.errors import ConfigError
from vitnas.formatting import loads_strict
from vitnas.paths import not_a_file
from vitnas.seeds import check_seed

FORMAT = "vitnas-ranker"
VERSION = 1
PRIOR = "params"
MIN_ARCHITECTURES = 4
MAX_ARCHITECTURES = 10**7  # labelled architectures a ranker was fitted on (a trained model each)
# ridge strengths as multiples of k (standardised features: X^T X is about k times a
# correlation matrix, so alpha = k is a penalty as strong as the data)
ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# chosen on the ViT-Bench-101 AutoFormer dev half (results/calibration/tuning.json): with the
# non-negative fit, a margin above 0 only gave up gain (dev, k = 10: mean gain over #params
# +0.023 at 0, +0.017 at 1, +0.005 at 2; the worst label -0.003 at 0)
EVIDENCE_THRESHOLD = 0.0
# the features a calibration uses when none are named: the shape baselines, free to compute
DEFAULT_FEATURES = ("params", "flops", "depth", "width", "logsize")
TRANSFORMS = ("log", "identity")
# a loaded ranker's weights stay below this: fitted on standardised features and a standardised
# rank target they are of order 1, and far larger ones (a hand-edited file) overflow the scores
MAX_WEIGHT = 1e3
CHOICES = ("prior", "fitted")


@dataclass(frozen=True)
class RankerFeature:
    """One input of a ranker: ``z = (transform(value) - mean) / scale``; the score is the sum
    of ``weight * z`` over features (``fitted_weight``: the fitted model's weight, kept even
    when the prior was chosen)."""

    spec: str
    transform: str
    mean: float
    scale: float
    weight: float
    fitted_weight: float


@dataclass
class Ranker:
    """A fitted ranking model over proxy scores; higher ``score`` ranks higher.

    ``chosen`` is ``prior`` (#params alone) or ``fitted`` (the non-negative ridge over every
    feature); ``alpha`` is its ridge strength (a multiple of k); ``loo_tau_prior`` and
    ``loo_tau_fitted`` are the leave-one-out Kendall taus on the k that decided it,
    ``evidence`` the paired statistic compared with ``threshold``. ``meta`` records where the
    labels and the feature scores came from (benchmark, metric, space, proxy batch), which a
    search must match for proxy features to mean the same."""

    features: list[RankerFeature]
    prior: str
    chosen: str
    k: int
    alpha: float
    rho: float
    loo_tau_prior: float
    loo_tau_fitted: float
    evidence: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)
    path: str | None = field(default=None, compare=False)

    @property
    def feature_specs(self) -> tuple[str, ...]:
        """The proxy specs to score for each candidate, in the order ``score_rows`` takes."""
        return tuple(f.spec for f in self.features)

    def standardised(self, values: np.ndarray) -> np.ndarray:
        """Rows of raw feature values (in ``feature_specs`` order) -> standardised features. A
        value below a ``log`` feature's domain (not positive: all k were) becomes -inf, the
        limit of the log, so it ranks below every positive value as a monotone map must."""
        values = np.asarray(values, dtype=float)
        out = np.empty_like(values)
        for j, feature in enumerate(self.features):
            column = values[..., j]
            if feature.transform == "log":
                positive = np.where(column > 0, column, 1.0)
                column = np.where(column > 0, np.log(positive),
                                  np.where(np.isnan(column), math.nan, -math.inf))
            out[..., j] = (column - feature.mean) / feature.scale
        return out

    def score_rows(self, values: np.ndarray, model: str | None = None) -> np.ndarray:
        """Scores of many architectures at once (rows: architectures, columns: the features
        in ``feature_specs`` order); NaN where a feature it weighs is NaN.
        ``model``: ``prior`` or ``fitted`` instead of the chosen one."""
        if model is not None and model not in CHOICES:
            raise ConfigError(f"ranker model {model!r} is not one of {', '.join(CHOICES)}")
        weights = np.array([f.weight if model is None else f.fitted_weight if model == "fitted"
                            else float(f.spec == self.prior) for f in self.features])
        values = np.atleast_2d(np.asarray(values, dtype=float))
        if values.shape[1] != len(self.features):
            raise ConfigError(f"the ranker takes {len(self.features)} features "
                              f"({', '.join(self.feature_specs)}), got {values.shape[1]}")
        z = self.standardised(values)[:, weights != 0]
        with np.errstate(invalid="ignore"):
            return (z * weights[weights != 0]).sum(axis=1)

    def score(self, features: Mapping[str, float]) -> float:
        """The score of one architecture from its feature values (``{spec: value}``)."""
        missing = [s for s in self.feature_specs if s not in features]
        if missing:
            raise ConfigError(f"the ranker needs features {', '.join(missing)} "
                              f"(it takes {', '.join(self.feature_specs)})")
        values = np.array([[float(features[s]) for s in self.feature_specs]])
        bad = [f.spec for f, v in zip(self.features, values[0]) if math.isnan(v) and f.weight]
        if bad:
            raise ConfigError(f"feature(s) {', '.join(bad)} are NaN: cannot score")
        return float(self.score_rows(values)[0])

    def summary(self) -> dict[str, Any]:
        """What a report says about the ranker: its file, label, choice and evidence."""
        return {"file": self.path, "metric": self.meta.get("metric"),
                "benchmark": self.meta.get("benchmark"), "k": self.k, "chosen": self.chosen,
                "loo_tau_prior": self.loo_tau_prior, "loo_tau_fitted": self.loo_tau_fitted,
                "evidence": self.evidence, "threshold": self.threshold,
                "features": list(self.feature_specs)}

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (strict JSON: an undefined tau is null)."""
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        for key in ("loo_tau_prior", "loo_tau_fitted"):
            data[key] = data[key] if math.isfinite(data[key]) else None
        return {"format": FORMAT, "version": VERSION, **data}


# --- fitting --------------------------------------------------------------------------------
def _transform_of(values: np.ndarray) -> str:
    return "log" if (values > 0).all() else "identity"


def _standardise(columns: np.ndarray, transforms: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Transformed, standardised columns and their means and scales (a constant column gets
    scale 1, so it stays zero and the fit gives it no weight)."""
    t = np.column_stack([np.log(columns[:, j]) if kind == "log" else columns[:, j]
                         for j, kind in enumerate(transforms)])
    mean = t.mean(axis=0)
    scale = t.std(axis=0)
    scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)
    return (t - mean) / scale, mean, scale


def _rank_target(labels: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    ranks = rankdata(labels)
    spread = ranks.std()  # 0 only in a leave-one-out fold whose labels are all equal
    return (ranks - ranks.mean()) / spread if spread else np.zeros(len(ranks))


def _fit(columns: np.ndarray, labels: np.ndarray, transforms: Sequence[str], prior: int,
         alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Non-negative ridge toward the prior, for every strength in ``alphas``: minimise
    ||t - Z w||^2 + alpha k ||w - w0||^2 subject to w >= 0, where w0 = max(rho, 0) on the
    prior and 0 elsewhere. That is a non-negative least-squares problem on the data stacked
    over sqrt(alpha k) I, solved by SciPy's ``nnls`` (the Lawson-Hanson solver that
    scikit-learn's ``LinearRegression(positive=True)`` wraps; called directly it is about 50x
    faster, which the simulation's million fits need). Every feature is oriented
    higher-is-better (proxies are normalised so), so a weight may grow or vanish but never
    reverse a feature: on a noisy label, ten architectures often rank #params backwards by
    chance, and a flipped prior is the costliest mistake. Returns the standardisation (mean,
    scale), the weights (alphas x features) and rho."""
    from scipy.optimize import nnls

    z, mean, scale = _standardise(columns, transforms)
    target = _rank_target(labels)
    k, width = z.shape
    rho = float(np.mean(target * z[:, prior]))
    centre = np.zeros(width)
    centre[prior] = max(rho, 0.0)
    weights = np.empty((len(alphas), width))
    # every column and the target have mean zero on the k, so there is no intercept
    for a, alpha in enumerate(alphas):
        root = math.sqrt(alpha * k)
        design = np.vstack([z, root * np.eye(width)])
        response = np.concatenate([target, root * centre])
        weights[a] = nnls(design, response)[0]
    return mean, scale, weights, rho


def pair_signs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """+1 / -1 / 0 for every pair i < j: whether ``scores`` order it as ``labels`` do (0 for a
    tie in either)."""
    i, j = np.triu_indices(len(labels), k=1)
    return np.sign(scores[i] - scores[j]) * np.sign(labels[i] - labels[j])


def paired_evidence(candidate: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> float:
    """How clearly ``candidate`` orders the pairs better than ``reference``: the sum of the
    per-pair sign differences over the root of the sum of their squares (a sign test over the
    pairs the two rankings order differently; 0 when they agree on every pair)."""
    d = pair_signs(candidate, labels) - pair_signs(reference, labels)
    spread = math.sqrt(float((d * d).sum()))
    return float(d.sum()) / spread if spread else 0.0


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    from vitnas.bench.stats import kendall_tau_b

    return kendall_tau_b(x, y)


def loo_predictions(columns: np.ndarray, labels: np.ndarray, transforms: Sequence[str],
                    prior: int, alphas: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions (alphas x k): each architecture scored by the whole fit
    (transforms' standardisation, rank target, rho, ridge) repeated without it."""
    k = len(labels)
    out = np.empty((len(alphas), k))
    keep = np.ones(k, dtype=bool)
    for i in range(k):
        keep[i] = False
        mean, scale, weights, _ = _fit(columns[keep], labels[keep], transforms, prior, alphas)
        t = np.array([math.log(v) if kind == "log" else v
                      for v, kind in zip(columns[i], transforms)])
        out[:, i] = weights @ ((t - mean) / scale)
        keep[i] = True
    return out


def _check(features: Mapping[str, Sequence[float]], labels: Sequence[float],
           prior: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=float).ravel()
    k = len(labels)
    if k < MIN_ARCHITECTURES:
        raise ConfigError(f"calibration needs at least {MIN_ARCHITECTURES} trained "
                          f"architectures with a label, got {k}")
    if not np.isfinite(labels).all():
        raise ConfigError(f"{int((~np.isfinite(labels)).sum())} of the {k} labels are NaN or "
                          f"infinite; drop those architectures first")
    if (labels == labels[0]).all():
        raise ConfigError(f"the label is constant ({labels[0]:g}) over the {k} architectures: "
                          f"nothing to rank")
    # only the labels' order is used (the rank target, pair signs, Kendall tau), so they are
    # ranked here: labels near the float limit then cannot overflow a difference
    from scipy.stats import rankdata

    labels = rankdata(labels)
    if prior not in features:
        raise ConfigError(f"the features must include the prior {prior!r} "
                          f"(got {', '.join(features) or 'none'})")
    specs = list(features)
    columns = np.empty((k, len(specs)))
    for j, spec in enumerate(specs):
        column = np.asarray(features[spec], dtype=float).ravel()
        if len(column) != k:
            raise ConfigError(f"feature {spec} has {len(column)} values for {k} labels")
        bad = np.flatnonzero(~np.isfinite(column))
        if len(bad):
            raise ConfigError(f"feature {spec} is NaN or infinite for {len(bad)} of the {k} "
                              f"architectures (first: index {bad[0]}); leave it out of the "
                              f"features or fix its scores")
        columns[:, j] = column
    if np.ptp(columns[:, specs.index(prior)]) == 0:
        raise ConfigError(f"the prior {prior} is constant over the {k} architectures, so it "
                          f"cannot rank them; calibrate on architectures of different sizes")
    return specs, columns, labels


def fit_ranker(features: Mapping[str, Sequence[float]], labels: Sequence[float], *,
               prior: str = PRIOR, alphas: Sequence[float] = ALPHAS,
               threshold: float = EVIDENCE_THRESHOLD,
               meta: Mapping[str, Any] | None = None) -> Ranker:
    """Fit a ranker to k architectures: ``features`` maps each proxy spec to its k values (the
    prior among them), ``labels`` are their trained accuracies (higher is better).

    The ridge strength is the one whose leave-one-out ranking has the highest Kendall tau with
    the labels (ties: the stronger); the fitted model is chosen over the prior when that
    ranking beats the prior's with ``paired_evidence >= threshold``."""
    specs, columns, labels = _check(features, labels, prior)
    alphas = np.asarray(sorted(alphas), dtype=float)
    if len(alphas) == 0 or not (np.isfinite(alphas) & (alphas > 0)).all():
        raise ConfigError("ridge strengths must be finite and > 0")
    if not math.isfinite(threshold):
        raise ConfigError(f"the evidence threshold must be finite, got {threshold} (a large "
                          f"one keeps the prior)")
    p = specs.index(prior)
    transforms = [_transform_of(columns[:, j]) for j in range(len(specs))]
    loo = loo_predictions(columns, labels, transforms, p, alphas)
    taus = [kendall_tau(row, labels) for row in loo]  # NaN: a constant ranking, the worst
    best = max(range(len(alphas)),
               key=lambda a: (-math.inf if math.isnan(taus[a]) else round(taus[a], 12), a))
    prior_scores = columns[:, p]
    evidence = paired_evidence(loo[best], prior_scores, labels)
    tau_prior, tau_fitted = kendall_tau(prior_scores, labels), kendall_tau(loo[best], labels)
    mean, scale, weights, rho = _fit(columns, labels, transforms, p, alphas[best:best + 1])
    fitted = weights[0]
    # a fit whose every weight vanished ranks every candidate alike: never the objective
    chosen = ("fitted" if evidence >= threshold and tau_fitted > tau_prior and fitted.any()
              else "prior")
    used = fitted if chosen == "fitted" else np.eye(len(specs))[p]
    return Ranker(
        features=[RankerFeature(s, kind, float(m), float(sd), float(w), float(f))
                  for s, kind, m, sd, w, f in zip(specs, transforms, mean, scale, used, fitted)],
        prior=prior, chosen=chosen, k=len(labels), alpha=float(alphas[best]), rho=rho,
        loo_tau_prior=tau_prior, loo_tau_fitted=tau_fitted, evidence=evidence,
        threshold=float(threshold), meta=dict(meta or {}))


# --- files ----------------------------------------------------------------------------------
def save_ranker(ranker: Ranker, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ranker.as_dict(), indent=1, allow_nan=False) + "\n")
    ranker.path = str(path)
    return path


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {key!r} must be a finite number")
    return float(value)


# What ``calibrate_benchmark`` records about the fit; ``search`` prints and compares them, so a
# present one must have its type (other keys are the user's own notes, kept as they are).
META_TYPES = {"benchmark": str, "metric": str, "space": str, "batch": str, "batch_size": int,
              "seed": int}


def _checked_meta(meta: Any, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: \"meta\" must be an object")
    for key, kind in META_TYPES.items():
        if key not in meta:
            continue
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, kind) or value == "":
            raise ConfigError(f"{where}: meta \"{key}\" must be a "
                              f"{'non-empty string' if kind is str else 'whole number'}, "
                              f"got {value!r}")
    if meta.get("batch_size", 1) < 1:
        raise ConfigError(f"{where}: meta \"batch_size\" must be >= 1, got {meta['batch_size']}")
    if "seed" in meta:
        check_seed(meta["seed"], f"{where}: meta \"seed\"")
    return meta


def ranker_from_dict(data: Any, where: str = "ranker") -> Ranker:
    """A ranker from its JSON form, every field checked (one-line errors)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{where} is not a vitnas ranker (no \"format\": \"{FORMAT}\"); make "
                          f"one with `vitnas calibrate`")
    if type(data.get("version")) is not int or data.get("version") != VERSION:
        raise ConfigError(f"{where} is ranker format version {data.get('version')!r}; this "
                          f"vitnas reads version {VERSION} (calibrate again)")
    rows = data.get("features")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{where}: \"features\" must be a non-empty list")
    features = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("spec"), str):
            raise ConfigError(f"{where}: feature {i} must be an object with a \"spec\"")
        if row.get("transform") not in TRANSFORMS:
            raise ConfigError(f"{where}: feature {row['spec']} has transform "
                              f"{row.get('transform')!r}, not one of {', '.join(TRANSFORMS)}")
        numbers = {k: _number(row, k, f"{where}: feature {row['spec']}")
                   for k in ("mean", "scale", "weight", "fitted_weight")}
        if numbers["scale"] <= 1e-12 * max(1.0, abs(numbers["mean"])):
            raise ConfigError(f"{where}: feature {row['spec']} needs a scale > 0 (above "
                              f"1e-12 of its mean, as a fit gives)")
        if max(abs(numbers["weight"]), abs(numbers["fitted_weight"])) > MAX_WEIGHT:
            raise ConfigError(f"{where}: feature {row['spec']} has a weight beyond "
                              f"{MAX_WEIGHT:g}, which no fit on standardised features gives")
        features.append(RankerFeature(row["spec"], row["transform"], **numbers))
    specs = [f.spec for f in features]
    if len(set(specs)) != len(specs):
        raise ConfigError(f"{where}: a feature is listed twice")
    from vitnas.proxies import get_proxy  # torch: only once a ranker file is really read

    for spec in specs:  # a search scores each spec and stores it under its canonical name
        if (canonical := get_proxy(spec).spec) != spec:
            raise ConfigError(f"{where}: feature {spec!r} is not written as vitnas writes it "
                              f"({canonical!r}); calibrate again, or write it so")
    if not any(f.weight for f in features):
        raise ConfigError(f"{where}: every weight is zero, so it ranks every candidate alike")
    if data.get("chosen") not in CHOICES:
        raise ConfigError(f"{where}: \"chosen\" must be one of {', '.join(CHOICES)}")
    if data.get("prior") not in specs:
        raise ConfigError(f"{where}: the prior {data.get('prior')!r} is not among its features")
    used = {f.spec: f.weight for f in features}
    expected = ({spec: float(spec == data["prior"]) for spec in specs}
                if data["chosen"] == "prior" else {f.spec: f.fitted_weight for f in features})
    if used != expected:
        raise ConfigError(f"{where}: its weights are not the {data['chosen']} model it says it "
                          f"chose (\"chosen\": \"prior\" weighs the prior 1 and the rest 0; "
                          f"\"fitted\" uses each fitted_weight); calibrate again")
    k = data.get("k")
    if (not isinstance(k, int) or isinstance(k, bool) or not
            MIN_ARCHITECTURES <= k <= MAX_ARCHITECTURES):
        raise ConfigError(f"{where}: \"k\" must be an integer from {MIN_ARCHITECTURES} to "
                          f"{MAX_ARCHITECTURES:,}")
    if not _number(data, "alpha", where) >= 0:
        raise ConfigError(f"{where}: \"alpha\" (the ridge strength) must be >= 0")
    meta = _checked_meta(data.get("meta", {}), where)
    taus = {}
    for key in ("loo_tau_prior", "loo_tau_fitted"):  # NaN when the k's ranking is undefined
        value = data.get(key)
        taus[key] = math.nan if value is None else _number(data, key, where)
    return Ranker(features=features, prior=data["prior"], chosen=data["chosen"], k=k,
                  alpha=_number(data, "alpha", where), rho=_number(data, "rho", where),
                  evidence=_number(data, "evidence", where),
                  threshold=_number(data, "threshold", where), meta=meta, **taus)


def load_ranker(path: str | Path) -> Ranker:
    """A ranker saved by ``save_ranker`` (``vitnas calibrate --out``)."""
    if problem := not_a_file(path):
        raise ConfigError(f"ranker file {path} {problem} (make one with `vitnas calibrate`)")
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"ranker file {path} is not text (not a ranker's JSON)") from None
    data = loads_strict(text, f"ranker file {path}")
    ranker = ranker_from_dict(data, f"ranker file {path}")
    ranker.path = str(path)
    return ranker


# --- calibrating on a benchmark -------------------------------------------------------------
def calibrate_benchmark(bench: Any, metric: str, features: str | Sequence[str], store: Any, *,
                        batch: str = "cifar10", batch_size: int = 32, seed: int = 0,
                        data_dir: str | None = None, progress: bool = False,
                        **execution: Any) -> Ranker:
    """Score ``features`` (proxy specs, a list or the comma form; the prior is added when
    missing) on every architecture of ``bench`` that has a ``metric`` label, through the score
    store like the scoreboard does, and fit a ranker to them. ``execution``: workers, threads,
    backend, address."""
    from vitnas.bench.correlate import score_benchmark
    from vitnas.bench.files import Benchmark
    from vitnas.proxies.spec import resolve_proxies

    specs = [p.spec for p in resolve_proxies(features)]  # a configuration named twice: once
    if PRIOR not in specs:
        specs.insert(0, PRIOR)
    values = bench.values(metric)
    kept = [i for i, v in enumerate(values) if v is not None]
    if len(kept) < MIN_ARCHITECTURES:
        raise ConfigError(f"{bench.name} has {len(kept)} architectures with a {metric} label; "
                          f"calibration needs at least {MIN_ARCHITECTURES}")
    subset = Benchmark(bench.name, bench.space, [bench.records[i] for i in kept], bench.meta)
    scores, _ = score_benchmark(subset, specs, store, batch, batch_size, seed, data_dir,
                                progress, **execution)
    meta = {"benchmark": bench.name, "metric": metric, "space": bench.space.name,
            "batch": batch, "batch_size": batch_size, "seed": seed}
    return fit_ranker({s: scores[s] for s in specs}, [values[i] for i in kept], meta=meta)
