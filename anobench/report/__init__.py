"""The report stage: tables, statistics and label-free selection measurements over finished runs.

:mod:`~anobench.report.leaderboard` reads an experiment's runs from MLflow and writes the
leaderboard files; :mod:`~anobench.report.comparison` holds the paired statistics,
:mod:`~anobench.report.selection` and :mod:`~anobench.report.selection_inflation` measure
label-free choices against test AUROC, and :mod:`~anobench.report.markdown` formats tables.
"""
