"""resumespec: the resume protocol of encode/language embedding transfer.

Subpackages:
    resumespec.spec         the TLA+ specification, its models and the TLC runner
    resumespec.reference    the reference implementation on real tensors
    resumespec.conformance  trace schema and checkers for engine traces
"""

__version__ = "0.1.0"
