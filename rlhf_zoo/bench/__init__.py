"""Benchmarks: suites of runs (objectives × knob sweeps × seeds), a resumable runner, and the renderer
that turns run records into ``docs/benchmarks/<suite>.md`` with tables, plots and the BOND paper's claims.

    rlhf-zoo bench suite=exact                    # run what is not finished yet, then render
    rlhf-zoo bench suite=exact render_only=true   # render from the records only

Modules: :mod:`~rlhf_zoo.bench.suites` (the sweeps, declared once, and the suites that pick their
values), :mod:`~rlhf_zoo.bench.runner` (runs points into ``<out>/<suite>/<point-id>/`` and writes each
point's record when it finished, there and in the records folder of the repository),
:mod:`~rlhf_zoo.bench.records` (the record format, where records live, which ones may be pooled),
:mod:`~rlhf_zoo.bench.version` (the code version and git commit that records carry),
:mod:`~rlhf_zoo.bench.stats` (t intervals, interpolation), :mod:`~rlhf_zoo.bench.claims` (the paper's
claims, each with its check and its plot panel), :mod:`~rlhf_zoo.bench.render` and
:mod:`~rlhf_zoo.bench.plots` (the page and its PNGs), :mod:`~rlhf_zoo.bench.command` (the CLI command).
"""
