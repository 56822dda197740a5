"""Integrity oracle: block format (blocks), guest workload (agent.sh),
console history (history), the merging of console captures polled from
nova (console) and the pure checker (checker).

See doc/source/oracle.rst.
"""
