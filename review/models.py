"""Spot-check queues, claims, decisions and release approval live here.

The review app may import datasets; datasets never imports review.
"""
