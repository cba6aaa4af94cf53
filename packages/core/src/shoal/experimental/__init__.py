"""APIs that may change between minor versions (Ray's ``ray.experimental``)."""
