"""Batch classification on a Ray cluster: the local pipeline's steps, spread over machines.

Optional (the ``ray`` extra, ``pip install 'leukoscan[ray]'``): the desktop app and the bundle never
load it, and ``engine.distributed`` is the only engine package that imports ``ray`` (an import-linter
contract in pyproject.toml).  ``leukoscan-cli classify --engine ray`` imports it lazily.

- :mod:`.payload`: the model as data (cards + ONNX bytes) so workers need no models folder (no Ray);
- :mod:`.workers`: the read task and the classifier actor (what runs on the workers);
- :mod:`.ray_engine`: the driver: connect, the actor pool, the ordered stream of results.
"""
