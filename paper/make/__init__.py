"""One module per figure of the paper, in the order of the text.

Each module defines ``NAME``, ``NUMBER``, ``TITLE``, ``jobs(quick)`` (its cached
computations) and ``make(ctx)`` (the figure function: draws one PNG and returns its
:class:`paper.build.Section`).
"""

FIGURE_MODULES = (
    "fig01_sharpening",
    "fig02_drop",
    "fig03_momentum",
    "fig04_phases",
    "fig05_central_flow",
    "fig06_catapult",
    "fig07_orbits",
    "fig08_gfs_sharpness",
    "fig09_dln_bias",
    "fig10_logistic",
    "fig11_ablations",
    "fig12_sgd",
    "fig13_adam",
    "fig14_stochastic",
    "fig15_atlas",
)
