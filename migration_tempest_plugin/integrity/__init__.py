"""Integrity oracle: block format (blocks), guest workload (agent.sh),
console history (history) and the pure checker (checker).

See doc/source/oracle.rst.
"""
