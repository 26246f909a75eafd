"""The ground floor of the engine: a cell's labels (:mod:`.labels`), the closed sets of words the case record
uses (:mod:`.kinds`), the case rules (:mod:`.rules`, with the interval of :mod:`.stats`) and the store's error
kinds and side files (:mod:`.store_files`).  It imports nothing else of engine, so every layer (the pipeline,
the reports, the case record, the CLI, the GUI through :mod:`gui.document`) can stand on it without a cycle
(tests/test_architecture.py)."""
