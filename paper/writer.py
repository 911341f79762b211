"""Write ``paper.md`` (the text with its figures embedded), ``numbers.json`` and ``build.json``.

The text of each figure comes from its figure function (:class:`paper.build.Section`),
whose numbers are read from the result files; this module adds the frame around them.
Every file is written atomically (:func:`validation.checkpoint.atomic_write`); the JSON
files are strict JSON, with NaN and infinities as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` (:func:`validation.checkpoint.write_strict_json`).
"""

from __future__ import annotations

import os
from types import ModuleType

from validation.checkpoint import read_json, write_strict_json, write_text

TITLE = "Gradient descent at the edge of stability, from minimal models to a real network"

INTRO = """\
Full-batch gradient descent (GD) with step size η on a neural network does not behave as
the quadratic picture predicts. The quadratic picture says that GD is stable only where
the sharpness S (the top eigenvalue of the training loss's Hessian) is below 2/η. What
happens instead (Cohen et al., arXiv 2103.00065): the sharpness rises
(*progressive sharpening*) until it reaches 2/η, then hovers there (the *edge of
stability*), while the loss keeps decreasing over long times, non-monotonically over short
ones. This text reproduces the phenomenon on a real network and then walks through the
minimal models that explain it: self-stabilization and the central flow, catapults,
period-doubling, the sharpness of gradient-flow solutions, implicit biases at large step
sizes, and logistic regression. Every figure and every number below is produced by
`python -m paper` from cached results named after their configuration. Where a figure has
a critical sharpness (2/η for GD) or a critical step size, it is drawn as a dashed line
(in Figure 4's phase planes the edge is the axis y = 0; Figures 10(a, b) and 14 have
none). Figures 1–3 and 5 are single runs of one setting, a tanh MLP whose read-out
starts at zero: they show where the phenomenon appears, not how common it is. Figure 15,
the atlas, asks how common: the same checks over four architectures, two losses, two
read-out initialisations and two parametrisations, three seeds each, on short runs."""


#: The related-work paragraph: which figure reproduces what, from which paper. ``{name}``
#: is replaced by "Figure N" of the figure module with that ``NAME`` (:func:`related_work`).
RELATED_WORK = """\
The real-network figures reproduce, on a smaller network and data set, the phenomena that
Cohen et al. (arXiv 2103.00065) reported: progressive sharpening and the edge of stability
({sharpening}), re-sharpening after a step-size drop ({drop}), the critical sharpness of
momentum ({momentum}) and the effect of width, depth and data size ({ablations}); and,
like their cross-entropy experiments, the atlas ({atlas}) tests the edge across
architectures and losses, at a far smaller scale. Their
sequel on adaptive methods (arXiv 2207.14484) supplies Adam's preconditioned threshold
({adam}), and Andreyev & Beneventano (arXiv 2412.20553) the batch sharpness of SGD
({sgd}). The mechanism is the self-stabilization of Damian et al. (arXiv 2209.15594),
whose cubic model and four phases are {phases}; its stochastic extension by Liao et al.
(arXiv 2604.21016) is tested on that model in {stochastic-gap}. The central flow of
Cohen, Damian et al. (arXiv 2410.24206) is run beside GD in {central-flow}. The minimal
models come from: the uv model's catapult (Lewkowycz et al., arXiv 2003.02218; Kalra et
al., arXiv 2311.02076) in {catapult}; period-2 orbits of scalar networks (Chen & Bruna,
arXiv 2206.04172) in {orbits}; the sharpness of gradient-flow solutions (Kreisler et al.,
arXiv 2305.13064) in {gfs-sharpness}; the diagonal linear network (Woodworth et al., arXiv
2002.09277) with the effective initialisation of large steps (Even et al., arXiv
2302.08982) in {dln-bias}; logistic regression at large steps (Wu et al., arXiv
2402.15926; Zhang et al., arXiv 2504.04105) and the stable cycles below 2/λ of Meng et al.
(arXiv 2406.05033) in {logistic}. Three analyses of the edge of stability in other minimal
settings are not reproduced: Arora, Li & Panigrahi (arXiv 2205.09745) prove it for
normalised GD and for GD on √L, which then follow a flow that lowers the sharpness along
the manifold of minimisers; Lyu, Li & Arora (arXiv 2206.07085) for scale-invariant
networks with normalisation and weight decay; Li, Wang & Li (arXiv 2207.12678) for
two-layer linear networks, tracking the phases of the sharpness through the norm of the
output layer. Nor are the minimalist examples of Zhu et al. (arXiv 2210.03294) and Song &
Yun (arXiv 2307.04204)."""


def related_work() -> str:
    """:data:`RELATED_WORK` with every ``{name}`` replaced by that figure's number."""
    from paper.build import load_modules

    return RELATED_WORK.format_map({m.NAME: f"Figure {m.NUMBER}" for m in load_modules()})


#: Every paper the figures and the README use: (authors, title, arXiv id), in the order
#: the text first needs them.
REFERENCES = (
    ("J. M. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar",
     "Gradient descent on neural networks typically occurs at the edge of stability",
     "2103.00065"),
    ("S. Greydanus, D. Kobak", "Scaling down deep learning with MNIST-1D", "2011.14439"),
    ("J. M. Cohen, B. Ghorbani, S. Krishnan, N. Agarwal, S. Medapati, M. Badura, D. Suo, "
     "D. Cardoze, Z. Nado, G. E. Dahl, J. Gilmer",
     "Adaptive gradient methods at the edge of stability", "2207.14484"),
    ("A. Damian, E. Nichani, J. D. Lee",
     "Self-stabilization: the implicit bias of gradient descent at the edge of stability",
     "2209.15594"),
    ("J. M. Cohen, A. Damian, A. Talwalkar, J. Z. Kolter, J. D. Lee",
     "Understanding optimization in deep learning with central flows", "2410.24206"),
    ("A. Lewkowycz, Y. Bahri, E. Dyer, J. Sohl-Dickstein, G. Gur-Ari",
     "The large learning rate phase of deep learning: the catapult mechanism", "2003.02218"),
    ("D. S. Kalra, T. He, M. Barkeshli",
     "Universal sharpness dynamics in neural network training: fixed point analysis, edge "
     "of stability, and route to chaos", "2311.02076"),
    ("L. Chen, J. Bruna", "Beyond the edge of stability via two-step gradient updates",
     "2206.04172"),
    ("I. Kreisler, M. Shpigel Nacson, D. Soudry, Y. Carmon",
     "Gradient descent monotonically decreases the sharpness of gradient flow solutions in "
     "scalar networks and beyond", "2305.13064"),
    ("M. Even, S. Pesme, S. Gunasekar, N. Flammarion",
     "(S)GD over diagonal linear networks: implicit regularisation, large stepsizes and "
     "edge of stability", "2302.08982"),
    ("B. Woodworth, S. Gunasekar, J. D. Lee, E. Moroshko, P. Savarese, I. Golan, D. Soudry, "
     "N. Srebro", "Kernel and rich regimes in overparametrized models", "2002.09277"),
    ("J. Wu, P. L. Bartlett, M. Telgarsky, B. Yu",
     "Large stepsize gradient descent for logistic loss: non-monotonicity of the loss "
     "improves optimization efficiency", "2402.15926"),
    ("R. Zhang, J. Wu, L. Lin, P. L. Bartlett",
     "Minimax optimal convergence of gradient descent in logistic regression via large and "
     "adaptive stepsizes", "2504.04105"),
    ("S. Y. Meng, A. Orvieto, D. Y. Cao, C. De Sa",
     "Gradient descent on logistic regression with non-separable data and large step sizes",
     "2406.05033"),
    ("A. Andreyev, P. Beneventano",
     "Edge of stochastic stability: revisiting the edge of stability for SGD", "2412.20553"),
    ("F. Liao, A. Kolomvaki, A. Kyrillidis",
     "SGD at the edge of stability: the stochastic sharpness gap", "2604.21016"),
    ("X. Zhu, Z. Wang, X. Wang, M. Zhou, R. Ge",
     "Understanding edge-of-stability training dynamics with a minimalist example",
     "2210.03294"),
    ("M. Song, C. Yun",
     "Trajectory alignment: understanding the edge of stability phenomenon via bifurcation "
     "theory", "2307.04204"),
    ("S. Arora, Z. Li, A. Panigrahi",
     "Understanding gradient descent on edge of stability in deep learning", "2205.09745"),
    ("K. Lyu, Z. Li, S. Arora",
     "Understanding the generalization benefit of normalization layers: sharpness reduction",
     "2206.07085"),
    ("Z. Li, Z. Wang, J. Li",
     "Analyzing sharpness along GD trajectory: progressive sharpening and edge of stability",
     "2207.12678"),
)


def references() -> list[str]:
    """The references section: one numbered line per paper of :data:`REFERENCES`."""
    lines = ["## References", ""]
    for k, (authors, title, arxiv) in enumerate(REFERENCES, 1):
        lines.append(f"{k}. {authors}. *{title}*. arXiv {arxiv}.")
    return lines


def _timing(info: dict) -> str:
    mode = info["mode"]
    how = ("the reduced form `python -m paper --quick` (tiny networks, few steps: a "
           "smoke test, not the results)" if mode == "quick" else "`python -m paper`")
    parts = [f"Built by {how} on {info['cpus']} CPU core(s) with {info['workers']} "
             f"worker process(es)."]
    if info["from_scratch"]:
        parts.append(f"This build computed all {info['results']} results from scratch: "
                     f"{info['wall_s'] / 60:.1f} min of wall time "
                     f"({info['results_s'] / 60:.1f} min of computation in total).")
    else:
        parts.append(f"This build computed {info['computed']} of its {info['results']} "
                     f"results and read the others from the cache "
                     f"({info['wall_s']:.0f} s of wall time); computing all of them took "
                     f"{info['results_s'] / 60:.1f} min in total.")
        scratch = info.get("last_from_scratch")
        if scratch:
            parts.append(f"The last build from scratch in this folder took "
                         f"{scratch['wall_s'] / 60:.1f} min of wall time with "
                         f"{scratch['workers']} worker process(es) on {scratch['cpus']} "
                         f"core(s).")
    return " ".join(parts)


def _last_from_scratch(out: str, info: dict) -> dict | None:
    """The timing of this build if it was from scratch, else the one kept in ``build.json``
    if it computed the same results (same number, same recorded seconds in total)."""
    keys = ("mode", "results", "wall_s", "results_s", "workers", "cpus")
    if info["from_scratch"]:
        return {k: info[k] for k in keys}
    try:
        old = read_json(os.path.join(out, "build.json"))
    except (OSError, ValueError):
        return None
    last = old.get("last_from_scratch")
    same = last and all(last.get(k) == info[k] for k in ("mode", "results", "results_s"))
    return last if same else None


def write_paper(out: str, sections: list[tuple[ModuleType, object]], info: dict) -> str:
    """Write ``paper.md``, ``numbers.json`` and ``build.json`` into ``out``; return the path."""
    info["last_from_scratch"] = _last_from_scratch(out, info)
    lines = [f"# {TITLE}", "", INTRO, "", f"*{_timing(info)}*", "", "## Related work", "",
             related_work(), ""]
    numbers = {}
    for module, s in sections:
        lines += [f"## Figure {module.NUMBER}. {module.TITLE}", "",
                  f"![Figure {module.NUMBER}: {module.TITLE}]({s.file})", "",
                  f"**Figure {module.NUMBER}.** {s.caption.strip()}", "", s.text.strip(), ""]
        numbers[module.NAME] = s.numbers
    lines += references()
    path = write_text(os.path.join(out, "paper.md"), "\n".join(lines).rstrip() + "\n")
    for name, data in (("numbers.json", numbers), ("build.json", info)):
        write_strict_json(os.path.join(out, name), data)
    return path
