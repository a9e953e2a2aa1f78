"""Exit codes of the ``resumespec`` CLI, defined once.

CI scripts may rely on these numbers; they are documented in README.md.
"""

OK = 0                 # everything as expected / trace conforms
MISMATCH = 1           # check: some model's result differs from the manifest
USAGE = 2              # bad command line (argparse uses 2 as well)
NO_JAVA = 3            # java missing or older than 11
BAD_JAR = 4            # tla2tools.jar missing or not a usable TLC
TLA_PARSE_ERROR = 5    # SANY rejected a module (file and line are printed)
TIMEOUT = 6            # TLC ran past --timeout
OUT_OF_MEMORY = 7      # the JVM ran out of heap
TLC_ERROR = 8          # any other TLC failure we could not classify
BAD_INPUT = 9          # a file given by the user is missing or unreadable

# Conformance verdicts (resumespec conform).
VIOLATES = 10          # the trace leaves the spec
INCOMPLETE = 11        # the trace ends with obligations still open
MALFORMED = 12         # the trace does not parse against the schema
CHECKERS_DISAGREE = 13 # --checker both: native and TLC verdicts differ

# An optional part is not installed.
NEEDS_TORCH = 14       # the command needs the torch extra: pip install 'resumespec[torch]'

# Reference implementation (resumespec simulate).
SIM_FAILED = 20        # the run ended in hang, corruption or leak
