"""`make bench`: Meterline's performance benchmarks (SPEC §13), each printed beside its own raw limit
measured in the same run.

The foundation has no hot path yet; ingestion, quota check, usage queries, month close and invoice
PDF benchmarks register here as they land. Until then this prints the table header and says so.
"""

import sys

BENCHMARKS: list = []


def main() -> int:
    print(f"{'what':<48} {'measured':>14} {'raw limit':>14} {'ratio':>8} {'target':>10}")
    if not BENCHMARKS:
        print("(no benchmarks yet: ingestion, quota check, usage API, month close and invoice PDF add theirs)")
        return 0
    for benchmark in BENCHMARKS:
        benchmark()
    return 0


if __name__ == "__main__":
    sys.exit(main())
