"""Probes shipped with tunewise for the forgetting check (general text, general questions)."""
