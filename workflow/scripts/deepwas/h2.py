"""Heritability and enrichment of a trained prior, with block-jackknife standard errors.

Point estimates (for every prior, paper Eqn 6): with f_m the prior variance of the standardised effect of
variant m over the M variants that have LD,

    h2           = sum_m f_m                      (also per chromosome)
    Prop._SNPs   = M_C / M                        (binary category C; M_C its variants)
    Prop._h2     = sum_{m in C} f_m / h2
    Enrichment   = Prop._h2 / Prop._SNPs          (S-LDSC's definitions, Finucane et al. 2015)
    tau_star     = cov_m(f, a) / (sd_m(a) mean_m f)

tau_star is the standardised effect of an annotation a (binary or continuous): the least-squares slope of
f on a, times sd(a), relative to the mean per-variant heritability, i.e. S-LDSC's tau* = M sd(a) tau / h2
for a one-annotation model (marginal, not joint, since f_theta is not linear in the annotations).

Standard errors (constant and GLM priors): a delete-one-block jackknife over B blocks of contiguous
training windows (B = min(n_blocks, number of training windows); S-LDSC uses 200 blocks, graphREML 100).
For block b the parameters theta_(-b) are re-estimated without the block's windows, and every quantity
is recomputed on all M variants with theta_(-b) (as S-LDSC keeps the annotation totals fixed). The SE is
sqrt((B - 1) / B sum_b (q_b - mean_b q_b)^2).

The estimator re-estimated is the one training computes: the minimum theta* of the training loss (exact
likelihood of Eqn 5 or the LDSR loss of App. A.4, whichever trained the prior) plus the L2 penalty
equivalent to training's AdamW weight decay (App. A.3) on exactly the parameters training decays (the GLM's
weights, not its bias; nothing of the constant prior, whose numbers are those of the unpenalised loss):
1/2 sum_w n_core,w sum_j kappa_j theta_j^2 with kappa_j = weight_decay sqrt(v_j), the penalty whose
minimum is where AdamW's decayed update stops (`adamw_penalty`, which derives it). Without it the
unpenalised optimum of a GLM can run away along a weakly identified direction (near-collinear
annotations, an annotation whose variance component sits at 0) and the replicates with it
(tests/test_h2_penalty.py: weights at +-300 and overflowing f unpenalised, a finite SE penalised).
theta* is the trained theta refined by L-BFGS on the penalised loss; theta_(-b) is either refitted by
L-BFGS from theta* on the windows outside block b (`method='refit'`), or one Newton step from theta*, as
graphREML does (`method='newton'`):

    theta_(-b) = theta* - (H - H_b)^+ (g - g_b)        (g = sum_w g_w = 0 at theta*)

with per-window gradients g_w and Hessians H_w of the penalised per-window losses at theta*: the analytic
gradients of the likelihood module, and central differences of them for the Hessians (step `fd_step`).

Point estimate and SE: the table reports the trained prior's quantities (those of its prior files, which
fine-mapping uses); the SE is the jackknife's of theta*. Training that stops short of its stationary point
(few epochs) leaves the two apart: on the demo's bmi_like GLM, h2 0.47 trained and 0.34 at theta*
(benchmarks/RESULTS.md). se_method therefore gives h2 at theta* and |theta* - theta| for a penalised prior,
and a difference of more than one SE is logged as a warning: train longer (or read the SE as that of
theta*'s h2) before trusting the interval. The Newton step holds when a block is
a small part of the data: on msprime windows with 20 blocks it agrees with refits within 5%
(tests/test_h2.py; through the prior_h2 rule's own path on two msprime chromosomes with 20 blocks the SE of
the total h2 was 0.06% (constant) and 2.7% (GLM) from the refits'; on the demo's bmi_like GLM, penalised,
11% low, one influential block moving theta further than one step), while with 4 blocks of a 7-parameter
GLM one replicate was far off, and for the LDSR loss (quartic in log f) it was 9-60% off with 20 blocks. `method='auto'` (default) therefore takes Newton
steps for the exact likelihood from NEWTON_MIN_BLOCKS = 20 blocks on, and refits otherwise.
With fewer than MIN_BLOCKS = 4 training windows no standard errors are given, nor when a replicate's
parameters or f are not finite (a refit that diverged): se_method then says which replicates failed
(`failed_replicates`) instead of a silent NaN. The transformer prior's
quantities are point estimates only.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import torch

from .formats.annotations import read_annotations
from .formats.model_file import ModelFile
from .inference import Inference
from .io import read_json, write_table
from .ldsr import ldsr_inputs
from .likelihood import exact
from .likelihood.mismatch import Mismatch
from .sources import iter_windows
from .window import WindowData, make_window

H2_COLUMNS = ["Category", "Kind", "M", "h2", "h2_std_error", "h2_ldsr", "h2_snpvar", "Prop._SNPs", "Prop._h2",
              "Prop._h2_std_error", "Enrichment", "Enrichment_std_error", "tau_star", "tau_star_std_error",
              "n_blocks", "se_method"]
_NUMERIC = ["h2", "Prop._h2", "Enrichment", "tau_star"]
log = logging.getLogger("deepwas.h2")


# -- losses and parameters ----------------------------------------------------------------------------------

def objective_loss(objective: str, N: float, s2: float, ldsr_extras=None, h2_guess: float = 0.1,
                   M: int = 1) -> Callable:
    """loss(prior, window) of the training objective: the exact likelihood (Eqn 5) or LDSR (App. A.4)."""
    if objective == "deepwas":
        return lambda prior, w: exact.nll(N * prior(w.inputs).double(), s2, w.G, w.y, w.lam)
    if objective == "ldsr":
        from .ldsr import ldsr_objective

        fn = ldsr_objective(ldsr_extras, N, h2_guess, M)
        return lambda prior, w: fn(prior, w, N, s2, contextlib.nullcontext())
    raise ValueError(f"unknown objective {objective!r}; choose deepwas or ldsr")


def as_float64(prior: torch.nn.Module, windows: list[WindowData]):
    """A float64 copy of the prior and windows whose inputs are float64 (finite differences need it).

    Track windows are replaced by their mean over positions (shape [m, d_func, 1]): the GLM reads only that
    mean, so its output is unchanged and memory drops by w."""
    import copy

    p = copy.deepcopy(prior).double().eval()
    out = []
    for w in windows:
        inputs = {k: v.double() for k, v in w.inputs.items()}
        if "tracks" in inputs:
            inputs["tracks"] = inputs["tracks"].mean(-1, keepdim=True)
        out.append(WindowData(w.name, w.G.double(), w.lam.double(), w.y.double(), inputs, w.n_core))
    return p, out


def get_theta(prior) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector([q for q in prior.parameters() if q.requires_grad]).detach().clone()


def set_theta(prior, theta) -> None:
    """Copy a flat parameter vector into the prior (never sharing its storage)."""
    theta = torch.as_tensor(theta)
    i = 0
    with torch.no_grad():
        for q in prior.parameters():
            if q.requires_grad:
                q.copy_(theta[i:i + q.numel()].reshape(q.shape))
                i += q.numel()


def window_gradients(prior, windows, loss) -> np.ndarray:
    """(n_windows, p) gradient of each window's loss with respect to the flat parameters."""
    params = [q for q in prior.parameters() if q.requires_grad]
    rows = []
    for w in windows:
        g = torch.autograd.grad(loss(prior, w), params, allow_unused=True)
        rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(q)).reshape(-1)
                               for gi, q in zip(g, params)]).double().numpy())
    return np.stack(rows)


def window_hessians(prior, windows, loss, fd_step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(gradients (n, p), Hessians (n, p, p)) per window: central differences of the analytic gradients."""
    theta = get_theta(prior)
    p = theta.numel()
    g0 = window_gradients(prior, windows, loss)
    H = np.zeros((len(windows), p, p))
    try:
        for j in range(p):
            e = torch.zeros_like(theta)
            e[j] = fd_step
            set_theta(prior, theta + e)
            gp = window_gradients(prior, windows, loss)
            set_theta(prior, theta - e)
            gm = window_gradients(prior, windows, loss)
            H[:, :, j] = (gp - gm) / (2 * fd_step)
    finally:
        set_theta(prior, theta)
    return g0, 0.5 * (H + H.transpose(0, 2, 1))


# -- the weight-decay penalty --------------------------------------------------------------------------------

def decay_mask(prior) -> np.ndarray:
    """(p,) bool over the flat parameters (`get_theta`'s order): those AdamW decays in training
    (`training.decays`: weight matrices, not biases or the constant prior's log scale)."""
    from .training import decays

    return np.concatenate([np.full(q.numel(), decays(q)) for q in prior.parameters() if q.requires_grad])


def adamw_penalty(prior, windows, loss, weight_decay: float, accumulate: int = 1) -> np.ndarray:
    """kappa (p,): the per-core-variant L2 strength whose penalised loss has its minimum where AdamW's
    decoupled decay stops moving the parameters (the jackknife's objective, `regularised_loss`).

    Training (App. A.3) steps theta <- theta - lr (m_hat / (sqrt(v_hat) + eps) + wd theta) on the decayed
    parameters, m_hat and v_hat Adam's moments of the step gradient g_s = mean over `accumulate` windows of
    grad loss_w / n_core (n_core: the windows' mean number of core variants, training's loss scale). This is
    not gradient descent on loss + wd/2 |theta|^2 (only plain SGD would be): Adam divides the gradient, not
    the decay, by sqrt(v_hat). Its fixed point in expectation, E[g_s] = -wd sqrt(v_hat) theta, is the
    stationary point of

        sum_w [loss_w(theta) + 1/2 n_core,w sum_j kappa_j theta_j^2],   kappa_j = wd sqrt(v_j)

    (kappa_j = 0 for parameters that do not decay), independent of lr (lr sets how fast, not where). v_j is
    the second moment of g_s at the trained theta, from the per-window gradients there: mean^2 plus the
    variance of a mean of `accumulate` windows drawn without replacement, mu_j^2 + sigma_j^2 (n - a) /
    (a (n - 1)). (The optimiser's own v_hat, an average along the path, is not saved with the model: on the
    demo's DeepWAS-trained GLM 15 of 16 kappa_j were within a factor 2 of those from the checkpoint's v_hat,
    and on msprime windows AdamW's iterates settled 0.002 from the penalised optimum and 0.46 from the
    unpenalised one: tests/test_h2_penalty.py, benchmarks/RESULTS.md. Gradient clipping rescales m_hat and
    sqrt(v_hat) alike and leaves the fixed point alone.) The penalty is attached per window
    in proportion to its core variants, so the total penalty grows with the data as training's does (a
    deleted block takes its share with it, as AdamW on the other windows would), and Newton steps and refits
    see it through the per-window losses. kappa is then held fixed across the replicates."""
    mask = decay_mask(prior)
    kappa = np.zeros(mask.size)
    if not weight_decay or not mask.any():
        return kappa
    n = len(windows)
    G = window_gradients(prior, windows, loss) / np.mean([w.n_core for w in windows])
    a = max(1, min(int(accumulate), n))
    v = G.mean(0) ** 2 + (G.var(0) * (n - a) / (a * (n - 1)) if n > 1 else 0.0)
    kappa[mask] = weight_decay * np.sqrt(v[mask])
    return kappa


def regularised_loss(loss: Callable, kappa) -> Callable:
    """loss_w(theta) + 1/2 n_core,w sum_j kappa_j theta_j^2 (`adamw_penalty`); `loss` itself when kappa is 0."""
    if kappa is None or not np.any(kappa):
        return loss
    k = torch.as_tensor(np.asarray(kappa, dtype=np.float64))

    def penalised(prior, w):
        theta = torch.cat([q.reshape(-1) for q in prior.parameters() if q.requires_grad]).double()
        return loss(prior, w) + 0.5 * w.n_core * (k * theta ** 2).sum()
    return penalised


# -- jackknife ----------------------------------------------------------------------------------------------

def jackknife_blocks(n_windows: int, n_blocks: int) -> list[np.ndarray]:
    """min(n_blocks, n_windows) blocks of contiguous window indices (windows in genomic order)."""
    if n_windows < 2:
        raise ValueError(f"the block jackknife needs at least 2 training windows, got {n_windows}")
    B = max(2, min(int(n_blocks), n_windows))
    return [b for b in np.array_split(np.arange(n_windows), B)]


def newton_replicates(theta: np.ndarray, g: np.ndarray, H: np.ndarray, blocks) -> np.ndarray:
    """(B, p): theta_(-b) = theta - (H - H_b)^+ (g - g_b), one Newton step per deleted block."""
    g_tot, H_tot = g.sum(0), H.sum(0)
    out = []
    for b in blocks:
        Hb, gb = H_tot - H[b].sum(0), g_tot - g[b].sum(0)
        out.append(np.asarray(theta, dtype=np.float64) - np.linalg.pinv(Hb, rcond=1e-10, hermitian=True) @ gb)
    return np.stack(out)


# The loss L-BFGS sees where a line-search trial step overflows f: a wall (finite, zero gradient), from which
# the strong-Wolfe search interpolates back towards the step it came from.
OVERFLOW_LOSS = 1e30


def refit(prior, windows, loss, max_iter: int = 200, tol: float = 1e-10) -> np.ndarray:
    """theta minimising the summed loss over `windows` by L-BFGS from the prior's current parameters.

    The strong-Wolfe line search extrapolates up to 10 times the quasi-Newton step; on a log-linear prior
    such a trial can make f = exp(log f) overflow (the exact solver refuses a non-finite phi, the LDSR loss
    turns NaN). That trial scores OVERFLOW_LOSS with a zero gradient, so the search shortens the step
    instead of failing or carrying NaN into the replicate."""
    params = [q for q in prior.parameters() if q.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        try:
            total = sum(loss(prior, w) for w in windows)
        except FloatingPointError:
            total = None
        if total is None or not torch.isfinite(total):
            total = sum((q * 0).sum() for q in params) + OVERFLOW_LOSS
        total.backward()
        return total

    opt.step(closure)
    return get_theta(prior).numpy()


def refit_replicates(prior, windows, loss, blocks, max_iter: int = 200) -> np.ndarray:
    """(B, p): theta_(-b) refitted from the prior's parameters on the windows outside each block."""
    theta = get_theta(prior)
    out = []
    try:
        for b in blocks:
            drop = set(int(i) for i in b)
            set_theta(prior, theta)
            out.append(refit(prior, [w for i, w in enumerate(windows) if i not in drop], loss, max_iter))
    finally:
        set_theta(prior, theta)
    return np.stack(out)


def jackknife_se(replicates: np.ndarray) -> np.ndarray:
    """Delete-one-block jackknife standard error over axis 0: sqrt((B-1)/B sum (q_b - mean q)^2)."""
    q = np.asarray(replicates, dtype=np.float64)
    B = q.shape[0]
    return np.sqrt((B - 1) / B * ((q - q.mean(0)) ** 2).sum(0))


# -- quantities ---------------------------------------------------------------------------------------------

def is_binary(values: np.ndarray) -> bool:
    v = np.asarray(values)
    return bool(np.isin(v, (0.0, 1.0)).all() and (v == 1).any())


def quantities(f: np.ndarray, chrom: np.ndarray, categories: dict[str, np.ndarray]) -> pd.DataFrame:
    """Point quantities (module docstring) of per-variant f: rows total, chr{c}, then each category."""
    f = np.asarray(f, dtype=np.float64)
    chrom = np.asarray(chrom).astype(str)
    M, h2 = f.size, f.sum()
    rows = [{"Category": "total", "Kind": "total", "M": M, "h2": h2, "Prop._SNPs": 1.0, "Prop._h2": 1.0,
             "Enrichment": 1.0, "tau_star": np.nan}]
    for c in sorted(set(chrom), key=lambda c: (len(c), c)):
        sel = chrom == c
        ps, ph = sel.mean(), f[sel].sum() / h2
        rows.append({"Category": f"chr{c}", "Kind": "chromosome", "M": int(sel.sum()), "h2": f[sel].sum(),
                     "Prop._SNPs": ps, "Prop._h2": ph, "Enrichment": ph / ps, "tau_star": np.nan})
    for name, a in categories.items():
        a = np.asarray(a, dtype=np.float64)
        sd = a.std()
        tau = np.cov(f, a, bias=True)[0, 1] / (sd * f.mean()) if sd > 0 else np.nan
        if is_binary(a):
            ps, ph = a.mean(), (a * f).sum() / h2
            rows.append({"Category": name, "Kind": "binary", "M": int(a.sum()), "h2": (a * f).sum(),
                         "Prop._SNPs": ps, "Prop._h2": ph, "Enrichment": ph / ps, "tau_star": tau})
        else:
            rows.append({"Category": name, "Kind": "continuous", "M": M, "h2": np.nan, "Prop._SNPs": np.nan,
                         "Prop._h2": np.nan, "Enrichment": np.nan, "tau_star": tau})
    return pd.DataFrame(rows)


def h2_table(f: np.ndarray, chrom: np.ndarray, categories: dict, replicate_f=None, h2_ldsr: float | None = None,
             h2_snpvar: dict | None = None, method: str = "point estimate") -> pd.DataFrame:
    """The h2 / enrichment table (H2_COLUMNS). replicate_f: iterable of per-variant f under each jackknife
    replicate theta_(-b) (None: point estimates only); h2_snpvar: {'total' | 'chr{c}': sum of SNPVAR of the
    prior files}, reported beside the model's h2."""
    point = quantities(f, chrom, categories)
    se = pd.DataFrame(np.nan, index=point.index, columns=_NUMERIC)
    n_blocks = 0
    if replicate_f is not None:
        reps = np.stack([quantities(fb, chrom, categories)[_NUMERIC].to_numpy(np.float64) for fb in replicate_f])
        n_blocks = reps.shape[0]
        se = pd.DataFrame(jackknife_se(reps), index=point.index, columns=_NUMERIC)
        fixed = point["Kind"].eq("total").to_numpy()
        se.loc[fixed, ["Prop._h2", "Enrichment"]] = 0.0
    out = point.assign(**{f"{c}_std_error": se[c] for c in _NUMERIC})
    out["h2_ldsr"] = np.where(out["Category"] == "total", np.nan if h2_ldsr is None else h2_ldsr, np.nan)
    out["h2_snpvar"] = out["Category"].map(h2_snpvar or {}).astype(np.float64)
    out["n_blocks"] = n_blocks
    out["se_method"] = method if n_blocks or method.startswith("none") else "none (point estimate)"
    return out[H2_COLUMNS]


NEWTON_MIN_BLOCKS = 20
MIN_BLOCKS = 4          # below this a delete-one-block jackknife says nothing (refits on half the data or less)


def resolve_method(method: str, n_blocks: int, objective: str = "deepwas") -> str:
    """'auto': for the exact likelihood, one Newton step when there are at least NEWTON_MIN_BLOCKS blocks
    (each deletes at most 5% of the windows, where the quadratic approximation holds), full refits otherwise
    (few blocks: cheap, and a deleted block moves the optimum too far for one Newton step). For the LDSR
    objective always refits: its loss is quartic in log f, one Newton step was 9-60% off the refits on the
    msprime windows of tests/test_h2.py, and a refit costs only matrix-vector products."""
    if method == "auto":
        return "newton" if n_blocks >= NEWTON_MIN_BLOCKS and objective == "deepwas" else "refit"
    return method


def jackknife_f(prior, windows, loss, eval_inputs: dict, n_blocks: int, method: str = "auto",
                fd_step: float = 1e-4, max_iter: int = 200, objective: str = "deepwas", kappa=None,
                theta_opt=None):
    """Per-variant f on `eval_inputs` for each jackknife replicate theta_(-b) (a list of B arrays), and the
    replicates' parameters (B, p).

    prior and windows as returned by `as_float64`; eval_inputs the float64 inputs of all M variants.
    method: 'newton', 'refit' or 'auto' (`resolve_method`). kappa: the weight-decay penalty
    (`adamw_penalty`; None or 0: the loss alone): every replicate minimises the penalised loss without its
    block, and Newton steps start from its full-data minimum theta_opt (refitted from the prior's
    parameters when not given) with the penalised Hessian; refits start from theta_opt when given, else
    from the prior's parameters."""
    blocks = jackknife_blocks(len(windows), n_blocks)
    method = resolve_method(method, len(blocks), objective)
    loss = regularised_loss(loss, kappa)
    theta = get_theta(prior).numpy()
    if method == "newton":
        try:   # from the optimum of the full loss, where the gradient vanishes (not the finite-training theta)
            if theta_opt is None:
                theta_opt = refit(prior, windows, loss, max_iter)
            set_theta(prior, theta_opt)
            g, H = window_hessians(prior, windows, loss, fd_step)
        finally:
            set_theta(prior, theta)
        thetas = newton_replicates(theta_opt, g, H, blocks)
    elif method == "refit":   # each from theta* when given (the replicates' optima lie around it), else theta
        try:
            if theta_opt is not None:
                set_theta(prior, theta_opt)
            thetas = refit_replicates(prior, windows, loss, blocks, max_iter)
        finally:
            set_theta(prior, theta)
    else:
        raise ValueError(f"jackknife method must be 'newton' or 'refit', not {method!r}")
    out = []
    try:
        with torch.no_grad():
            for t in thetas:
                set_theta(prior, t)
                out.append(prior(eval_inputs).double().numpy())
    finally:
        set_theta(prior, theta)
    return out, thetas


# L-BFGS iterations for theta* from the trained theta: a short training run can stop far from it (the demo's
# LDSR-trained GLM: max |gradient| 3.9e3 at the trained theta, 4.6 after 200 iterations, 1.6e-4 after 1,200)
OPTIMUM_MAX_ITER = 1000


class Jackknife(NamedTuple):
    f: list              # per-variant f of each replicate theta_(-b)
    thetas: np.ndarray   # (B, p) the replicates' parameters
    kappa: np.ndarray    # (p,) the weight-decay penalty (`adamw_penalty`)
    theta: np.ndarray    # the trained parameters
    theta_opt: np.ndarray    # theta*: the minimum of the penalised loss on all windows
    f_opt: np.ndarray    # per-variant f at theta*


def penalised_jackknife(prior, windows, loss, eval_inputs: dict, n_blocks: int, method: str = "auto",
                        fd_step: float = 1e-4, objective: str = "deepwas", weight_decay: float = 0.0,
                        accumulate: int = 1) -> Jackknife:
    """`jackknife_f` of the penalised estimator: kappa from training's weight decay at the trained theta
    (`adamw_penalty`), theta* refitted on the penalised loss from the trained theta, Newton steps from theta*
    or refits of the penalised loss. prior, windows as from `as_float64`."""
    kappa = adamw_penalty(prior, windows, loss, weight_decay, accumulate)
    theta = get_theta(prior).numpy()
    try:
        theta_opt = refit(prior, windows, regularised_loss(loss, kappa), OPTIMUM_MAX_ITER)
        with torch.no_grad():
            f_opt = prior(eval_inputs).double().numpy()
    finally:
        set_theta(prior, theta)
    reps, thetas = jackknife_f(prior, windows, loss, eval_inputs, n_blocks, method, fd_step, objective=objective,
                               kappa=kappa, theta_opt=theta_opt)
    return Jackknife(reps, thetas, kappa, theta, theta_opt, f_opt)


def eval_set(prior, scaler, batches, track_names=(), inference=None) -> dict:
    """Over all core variants of `batches` (`export.iter_core_features`): point f (as in the prior files),
    chromosome, float64 model inputs for jackknife replicates (track windows reduced to their mean over
    positions, all the GLM reads) and the categories: annotation columns, then each track's mean over the
    window (continuous)."""
    from .export import model_inputs, predict_f

    f, chrom, freq, pred, tr, ann = [], [], [], [], [], []
    for b in batches:
        f.append(predict_f(prior, model_inputs(b, scaler), inference))
        chrom.append(np.array([k.split(":", 1)[0] for k in b["keys"]]))
        freq.append(b["freq"])
        pred.append(scaler.transform(b["pred"]))
        if b.get("tracks") is not None:
            tr.append(np.asarray(b["tracks"], dtype=np.float64).mean(-1))
        if b.get("ann") is not None:
            ann.append(b["ann"])
    inputs = {"freq": torch.as_tensor(np.concatenate(freq), dtype=torch.float64),
              "pred": torch.as_tensor(np.concatenate(pred), dtype=torch.float64)}
    categories = {}
    if ann:
        A = np.concatenate(ann)
        names = list(scaler.names[:A.shape[1]])
        categories.update({n: A[:, j] for j, n in enumerate(names)})
    if tr:
        T = np.concatenate(tr)
        inputs["tracks"] = torch.as_tensor(T[:, :, None])
        categories.update({f"track:{n}": T[:, j] for j, n in enumerate(track_names)})
    return {"f": np.concatenate(f), "chrom": np.concatenate(chrom), "inputs": inputs, "categories": categories}


def failed_replicates(thetas: np.ndarray, replicate_f) -> str | None:
    """Why the jackknife cannot give standard errors, or None: replicates whose refitted parameters or f on
    the M variants are not finite (a refit that diverged, or f = exp(log f) overflowing) would make every SE
    NaN without saying so."""
    bad_theta = ~np.isfinite(np.asarray(thetas, dtype=np.float64)).all(1)
    bad_f = np.array([not np.isfinite(fb).all() for fb in replicate_f]) & ~bad_theta
    if not (bad_theta.any() or bad_f.any()):
        return None
    parts = []
    if bad_theta.any():
        parts.append(f"{int(bad_theta.sum())} with non-finite parameters (the refit diverged; blocks "
                     f"{', '.join(str(b + 1) for b in np.flatnonzero(bad_theta))})")
    if bad_f.any():
        parts.append(f"{int(bad_f.sum())} whose f overflows on some variants (blocks "
                     f"{', '.join(str(b + 1) for b in np.flatnonzero(bad_f))})")
    return f"{int(bad_theta.sum() + bad_f.sum())} of {len(bad_theta)} jackknife replicates failed: " + "; ".join(parts)


def prior_h2(prior, model: str, ev: dict, train_windows=None, loss=None, n_blocks: int = 200,
             method: str = "auto", h2_ldsr: float | None = None, h2_snpvar: dict | None = None,
             fd_step: float = 1e-4, objective: str = "deepwas", weight_decay: float = 0.0,
             accumulate: int = 1) -> pd.DataFrame:
    """The h2 table of a trained prior: jackknife standard errors for 'constant' and 'glm' (`train_windows`:
    its training windows in genomic order, `loss` the training objective from `objective_loss`), point
    estimates for the transformer. `ev` from `eval_set`. weight_decay, accumulate: training's AdamW decay
    and accumulation for this model (`adamw_penalty`; 0: the unpenalised loss).

    The point estimates are the trained prior's (those of its prior files); the standard errors are the
    jackknife's of the penalised estimator theta* (module docstring). For a GLM, se_method gives h2 at
    theta* and |theta* - theta|, and a difference in h2 of more than one SE is logged as a warning."""
    reps = None
    if model in ("constant", "glm") and min(n_blocks, len(train_windows or [])) < MIN_BLOCKS:
        method = f"none (fewer than {MIN_BLOCKS} training windows for the jackknife)"
    elif model in ("constant", "glm"):
        p64, wins = as_float64(prior, train_windows)
        jk = penalised_jackknife(p64, wins, loss, ev["inputs"], n_blocks, method, fd_step, objective, weight_decay,
                                 accumulate)
        reps, thetas, kappa = jk.f, jk.thetas, jk.kappa
        method = f"block jackknife, {resolve_method(method, len(reps), objective)}"
        h2_trained = float(np.sum(ev["f"]))
        h2_opt, dist = float(np.sum(jk.f_opt)), float(np.linalg.norm(jk.theta_opt - jk.theta))
        log.info("h2 of the %s prior: trained %.4g, at the (penalised) optimum theta* %.4g (|theta* - theta| %.3g, "
                 "kappa %s)", model, h2_trained, h2_opt, dist, np.array2string(kappa, precision=3))
        note = "" if not np.any(kappa) else (
            f"penalised by AdamW's weight decay {weight_decay:g} on {int((kappa > 0).sum())} of {kappa.size} "
            f"parameters; h2 at the penalised optimum {h2_opt:.4g}, |theta* - theta| {dist:.3g}")
        why = failed_replicates(thetas, reps)
        if why is not None:
            log.warning("h2 of the %s prior: no standard errors (%s)", model, why)
            reps, method = None, f"none ({method}: {why}" + (f"; {note})" if note else ")")
        elif note:
            se = float(jackknife_se(np.sum(reps, axis=1)[:, None])[0])
            if abs(h2_opt - h2_trained) > se:
                log.warning("h2 of the %s prior: the trained prior's h2 %.4g and the penalised optimum's %.4g differ "
                            "by more than the SE %.3g: training stopped short of the optimum the SE describes",
                            model, h2_trained, h2_opt, se)
            method = f"{method} ({note})"
    return h2_table(ev["f"], ev["chrom"], ev["categories"], reps, h2_ldsr, h2_snpvar, method)


def write_prior_h2(model_path, s2_json, train_inputs, all_factor_inputs, annotations_path, out, n_blocks: int,
                   method: str, harmonised=None, priors_summary=None, tracks=None, train: dict | None = None,
                   inference: dict | None = None) -> pd.DataFrame:
    """Rule prior_h2: the h2 / enrichment table of a trained prior (`prior_h2`), written to `out`.

    train_inputs: (factor_dir, manifest, stats) of the training chromosomes (the jackknife refits the
    training objective there); all_factor_inputs: (factor_dir, manifest) of every chromosome, whose core
    variants held by the trait's harmonised table (with its frequencies) make the M variants of h2;
    priors_summary: the prior files' summary JSON (their sum of SNPVAR, beside h2); tracks: a
    `features.variants.VariantTracks` or None; train / inference: the config blocks that set the device,
    autocast and batch size of the transformer's forward (`inference.Inference.from_config`; the constant and
    GLM priors, whose jackknife refits run in float64 on the CPU, are scored on the CPU); `train` also gives
    the model's weight decay and accumulation, the jackknife's penalty (`adamw_penalty`; the rule reads the
    config's train block, whose changes retrain the prior and so rerun this). Returns the table."""
    from .export import iter_core_features, prior_from_checkpoint, read_harmonised_variants

    s2info = read_json(s2_json)
    ck = ModelFile.load(model_path)
    have = tracks.track_names if tracks is not None else []
    prior, scaler = prior_from_checkpoint(ck, have, str(model_path))
    annotations = read_annotations(annotations_path)
    freq = None
    if harmonised is not None:
        h = read_harmonised_variants(harmonised)
        freq = pd.Series(pd.to_numeric(h["eaf"]).to_numpy(dtype=np.float64), index=h.index)
    run = Inference.from_config(ck.model, train, inference)
    if ck.model in ("constant", "glm"):
        run = Inference(batch_size=run.batch_size)
    ev = eval_set(run.place(prior), scaler, iter_core_features(all_factor_inputs, annotations, tracks, freq), have,
                  run)
    windows = loss = None
    if ck.model in ("constant", "glm"):
        loaded = list(iter_windows(train_inputs, annotations, tracks))
        mm = Mismatch.from_record(s2info)   # the windows the prior was trained on (panel LD: corrected, deepwas.s2)
        windows = [make_window(name, fac, st["y"], scaler.transform(p), mismatch=mm) for name, fac, st, p in loaded]
        extras = {name: ldsr_inputs(fac, st["z2"], st["ldscore"]) for name, fac, st, _ in loaded} \
            if ck.objective == "ldsr" else None
        del loaded
        loss = objective_loss(ck.objective, s2info["N"], s2info["s2"], extras,
                              min(max(s2info.get("h2_ldsr", 0.1), 0.01), 0.9), s2info["M"])
    summary = read_json(priors_summary) if priors_summary else {}
    h2_snpvar = {f"chr{c}": v["h2"] for c, v in summary.get("per_chromosome", {}).items()}
    if summary:
        h2_snpvar["total"] = summary["h2"]
    decay = {}
    if ck.model in ("constant", "glm"):
        from .training import TrainConfig

        tc = TrainConfig.from_config(ck.model, ck.objective, train=train)
        decay = {"weight_decay": tc.weight_decay, "accumulate": tc.accumulate}
    table = prior_h2(prior, ck.model, ev, windows, loss, n_blocks, method, s2info.get("h2_ldsr"), h2_snpvar,
                     objective=ck.objective, **decay)
    write_table(out, table)
    return table
