"""Reports a person can read: counterexamples and trace verdicts as stories
(text), swimlane pages (one self-contained HTML file) and ITF traces.

See docs/reports.md.
"""
