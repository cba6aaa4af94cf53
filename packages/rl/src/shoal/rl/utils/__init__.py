"""Helpers shared by the algorithms: schedules, replay buffers, postprocessing, metrics."""
