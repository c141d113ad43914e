"""`sao iterate`: self-improvement rounds (generate → train → evaluate) and their ledger.

Above training, stages, engines, store and the report; below the CLI. Import the modules
themselves (`sao.rounds.loop`, `sao.rounds.config`): this package file imports nothing, so
reading a ledger does not load the pipeline.
"""

LEDGER_NAME = "iterate.json"  # the file that makes a folder an iterate folder
