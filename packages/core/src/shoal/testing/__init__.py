"""Test helpers for shoal and for programs built on it.

``shoal.testing.plugin`` is a pytest plugin (enable it with
``pytest_plugins = ["shoal.testing.plugin"]``) that provides runtime fixtures
and fails a run whose tests leave processes or shared memory behind.
"""

from shoal.testing.leaks import LeakReport, leftover_children, shm_segments

__all__ = ["LeakReport", "leftover_children", "shm_segments"]
