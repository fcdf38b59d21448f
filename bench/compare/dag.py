"""The task graph of the `dag` workload, the same for every system.

Task i depends on up to two earlier tasks: a near one,
i - 1 - (h(2i) % 10), and a far one, i - 1 - (h(2i + 1) % 100), each only
when it is not negative (and once when they coincide), where h is
splitmix64 on 64-bit integers. The graph is fixed, so every system runs
exactly the same one, and the near parent keeps a long critical path
(about a fifth of the tasks) that no scheduler can shorten.

`compare-grid` computes the same graph in Rust (`dag_parents` in
`bench/src/compare.rs`); its unit test runs this file (`python3
bench/compare/dag.py N` prints task i's parents on line i) and compares.
Nothing here imports anything beyond the standard library.
"""

import sys

MASK = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def parents(i):
    """Task i's parents, nearest first."""
    found = []
    for back in (1 + splitmix64(2 * i) % 10, 1 + splitmix64(2 * i + 1) % 100):
        if i - back >= 0 and i - back not in found:
            found.append(i - back)
    return found


if __name__ == "__main__":
    for task in range(int(sys.argv[1])):
        print(" ".join(str(p) for p in parents(task)))
