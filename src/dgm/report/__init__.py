"""Pictures and reports of runs: sample grids, scatter plots and training curves
(``plots``); what the report of one run shows (``gather``, plain data, no HTML) and what
the page comparing runs shows (``compare``); the self-contained HTML pages drawn from them
(``render``: ``dgm report``, ``dgm compare``)."""
