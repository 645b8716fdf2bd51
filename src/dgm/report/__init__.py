"""Pictures and reports of runs: sample grids, scatter plots and training curves
(``plots``), the self-contained HTML report of one run (``html``, ``dgm report``) and the
page comparing runs (``compare``, ``dgm compare``)."""
