"""The only place that knows about weight files and devices.

``weights`` (the safetensors format and its loader), ``registry`` (the model classes a file may
name), ``host`` (``ModelHost``: devices, threads, one load per process, streams and batching).
"""
