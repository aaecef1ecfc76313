"""Evaluation harness (voicetriage eval): kit manifest, paced runner, scorers and report; not on the serving path."""
