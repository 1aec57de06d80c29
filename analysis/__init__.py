"""Tables, figures and the report of mgrpo-bench, from local run files only (``python -m analysis ...``)."""
