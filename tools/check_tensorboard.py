#!/usr/bin/env python3
"""Checks that TensorBoard itself reads the event files shiftlm writes.

  python3 tools/check_tensorboard.py runs/small-rotate/tb    (needs: pip install tensorboard)

Prints each scalar tag with its number of points and last value, and fails if
there are none.
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
tags = acc.Tags()["scalars"]
if not tags:
    sys.exit("no scalars found")
for tag in sorted(tags):
    events = acc.Scalars(tag)
    print(f"{tag}: {len(events)} points, last step {events[-1].step}, last value {events[-1].value:.6g}")
