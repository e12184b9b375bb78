"""Benchmarks and load generators (not tests): the proxy against nginx and a bare backend."""
