"""Triage: signal extractors, the routing policy, caller profiles and the per-call observer that emits hints."""
