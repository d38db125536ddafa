"""Local stand-ins for Scalingo, used by the offline demo, the tests and the benchmark (loopback only)."""
