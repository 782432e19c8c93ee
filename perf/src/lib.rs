//! Traffic generation, the replay throughput harness and micro-benchmarks.
