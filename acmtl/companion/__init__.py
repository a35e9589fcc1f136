"""The paper's experiments: profiles (``config``), the run cache and its records (``runs``, ``records``), the plan
and the grid every notebook trains (``plan``), where results go and what they record (``publish``), the tables
(``tables``, ``comparison``, ``diagnosis``, ``analysis``, ``bench``, ``tune``), the paper's claims and our verdicts
(``claims``, ``verdicts``, ``findings``), figures (``figures``, ``plots``), the README (``report``) and the HTML
export of the notebooks (``export``)."""
