"""The runtime: bucket samplers, dataset selection, batch assembly, prefetch and distribution."""
