"""Tests of modelguard in pipelines: pre-commit hooks, CI examples, the gate, trusted signers."""
