"""spark-submit entry point for any command: `spark-submit [spark options] scripts/spark_targeting.py COMMAND...`.

Runs `targeting COMMAND...` (e.g. `history add HISTORY ... --engine spark`, `train --history HISTORY
--engine spark`, `score MANIFEST... --engine spark`); the cluster master and resources come from
spark-submit, not from `--spark-master`.
"""

import sys

from targeting.cli import app

if __name__ == "__main__":
    app(sys.argv[1:], prog_name="targeting")
