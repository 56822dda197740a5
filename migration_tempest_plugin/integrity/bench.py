# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The checker's throughput beside hashlib.sha256, on a synthetic disk.

Two figures: ``check(console text, disk)``, which parses the console inside
the call as the lab and the tempest tests pay for it, and ``check(History,
disk)``, the disk comparison alone.  Each round times sha256 and both
checks back to back; a ratio is sha256's time over the check's in the same
round, so that a load that comes and goes on a shared machine weighs on
both, and the figures are medians over the rounds.

``python -m migration_tempest_plugin.integrity.bench [MIB]`` prints them
as JSON; ``migration-lab bench --checker-only`` as a sentence.
"""

import dataclasses
import hashlib
import json
import statistics
import sys
import time

from migration_tempest_plugin.integrity import blocks
from migration_tempest_plugin.integrity import checker
from migration_tempest_plugin.integrity import history as history_mod


def synthetic(size_mib=64, writes=None, run='0badc0de', image_id='5eed1234'):
    """A (console text, image bytearray) pair for a healthy disk.

    Half the blocks are static, half work; by default 1.5 generations of
    writes were acknowledged (49,152 ACKs on 256 MiB).  The image is built
    by replaying the writes on the base image, independently of the
    checker's bulk builder.
    """
    total = size_mib * 1024 * 1024 // blocks.BLOCK_SIZE
    work = total // 2
    layout = blocks.make_layout(total - 1 - work, work, image_id)
    image = bytearray().join(blocks.iter_base_image(layout))
    if writes is None:
        writes = work + work // 2
    bs = blocks.BLOCK_SIZE
    for seq in range(writes):
        idx = layout.seq_block(seq)
        image[idx * bs:(idx + 1) * bs] = blocks.make_block(
            run, idx, layout.seq_gen(seq))
    return history_mod.render(layout, run, writes), image


@dataclasses.dataclass
class Bench:
    """Medians over *rounds*, in MB/s, and sha256-relative ratios."""
    mib: int
    acks: int
    rounds: int
    sha256_mbps: float
    console_mbps: float      # check(console text, disk)
    parsed_mbps: float       # check(History, disk)
    console_ratio: float     # console_mbps / sha256_mbps, round by round
    parsed_ratio: float

    def to_dict(self):
        return {k: round(v, 2) if isinstance(v, float) else v
                for k, v in dataclasses.asdict(self).items()}


def _timed(func, *args):
    started = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - started, result


def benchmark(size_mib=64, rounds=3):
    """Time sha256, check(text) and check(History) *rounds* times."""
    text, image = synthetic(size_mib)
    hist = history_mod.parse(text)
    data = bytes(image)
    mb = len(data) / 1e6
    sha, console, parsed = [], [], []
    for _ in range(rounds):
        sha.append(_timed(lambda d: hashlib.sha256(d).digest(), data)[0])
        for times, hist_or_text in ((console, text), (parsed, hist)):
            t, res = _timed(checker.check, hist_or_text, data)
            if res.verdict != checker.INTACT:  # pragma: no cover
                raise AssertionError('benchmark image not intact: %s'
                                     % res.message)
            times.append(t)
    med = statistics.median
    return Bench(
        mib=size_mib, acks=hist.acked_writes, rounds=rounds,
        sha256_mbps=mb / med(sha), console_mbps=mb / med(console),
        parsed_mbps=mb / med(parsed),
        console_ratio=med(s / c for s, c in zip(sha, console)),
        parsed_ratio=med(s / p for s, p in zip(sha, parsed)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    size = int(argv[0]) if argv else 256
    print(json.dumps(benchmark(size).to_dict()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
