"""Device simulator and local Event Grid publisher: IoT Hub events → subscription filters → a webhook.

``fleet`` makes the events (and remembers what each device last reported), ``publisher`` delivers them the way an
Event Grid subscription would (filters, batches, retries, dead-letters, optional chaos), ``expect`` compares what the
devices reported with the twins a run produced.
"""
