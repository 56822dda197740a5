"""Integrity oracle: block format (blocks), guest workload (agent.sh),
console history (history), the merging of console captures polled from
nova (console), the pure checker (checker) and its benchmark (bench).

See doc/source/oracle.rst.
"""
