"""The event source thingspace.m2m.callbacks in a process of its own, as ansible-rulebook runs it but quicker to
start: ``callbacks.main(queue, args)`` with a consumer that drains the queue. Stops on SIGTERM; SIGKILL it to
crash it.

    python tests/utils/callback_receiver.py '{"port": 9001, "state_dir": "..."}' [--events FILE]

The argument is the source's arguments as JSON; the store's password and location may come from the environment
(THINGSPACE_LEDGER_*), as the source reads them. With --events, the consumer appends the event_id of each event it
takes from the queue to FILE, one a line, written at once (what a killed receiver had queued stays there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def run(args, events_path):
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    from ansible_collections.thingspace.m2m.extensions.eda.plugins.event_source import callbacks

    queue = asyncio.Queue()
    events = os.open(events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if events_path else None

    async def consume():
        while True:
            event = await queue.get()
            if events is not None:
                os.write(events, (event["event_id"] + "\n").encode())

    source = asyncio.create_task(callbacks.main(queue, args))
    consumer = asyncio.create_task(consume())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    done, _pending = await asyncio.wait([source, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    source.cancel()
    consumer.cancel()
    await asyncio.gather(source, consumer, return_exceptions=True)
    if source in done and not source.cancelled():
        source.result()  # the source stopped by itself: raise why


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("args", help="the source's arguments, a JSON object")
    parser.add_argument("--events", metavar="FILE", help="append the event_id of each event queued to FILE")
    options = parser.parse_args()
    asyncio.run(run(json.loads(options.args), options.events))


if __name__ == "__main__":
    main()
