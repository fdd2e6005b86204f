"""The test tree as a regular package.

Spawned worker processes (multiprocessing ``spawn``, the gloo tests) import test functions by module
name, ``tests.mmbench...``. Without this file ``tests`` is a namespace package, and a regular package
of the same name anywhere on ``sys.path`` wins over it: baycomp (a dependency) installs a top-level
``tests`` package into site-packages, and the workers then fail to import their task and hang.
"""
