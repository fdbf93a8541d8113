"""spark-submit entry point: `spark-submit [spark options] scripts/spark_score.py MANIFEST... [score options]`.

Runs `targeting score ... --engine spark`; the cluster master and resources come from spark-submit.
"""

import sys

from targeting.cli import app

if __name__ == "__main__":
    app([*(["score"] + sys.argv[1:]), "--engine", "spark"], prog_name="targeting")
