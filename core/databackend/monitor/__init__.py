"""Monitoring: the typed run summary, flat scalar metrics for dashboards, the JSON-lines
metrics log, the live progress line and the self-contained HTML data report.

See docs/report.md.
"""
