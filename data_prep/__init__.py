"""Converters from public dataset releases to sharded TFRecords."""
