"""The benchmark: a seeded IoT Hub workload through the real pipeline, with the figures docs/performance.md lists."""
