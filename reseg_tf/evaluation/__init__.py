"""Metrics, the evaluation step, the evaluator, results records, summaries.

Below training: the trainer validates with these.
"""
