"""Runtime pieces shared by the backends: serialization, errors, workers, object store, scheduler."""
