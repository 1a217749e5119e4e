"""Test-time artifact factories: the malicious corpus and the pickle assembler it uses."""

from .malicious import SAMPLES, Canary, MaliciousSample, sample_by_id

__all__ = ["SAMPLES", "Canary", "MaliciousSample", "sample_by_id"]
