"""PgQueuer as the benchmark peer: `setup N` installs its schema and enqueues N jobs in
batches; `work` drains the queue with a no-op entrypoint (batch size 100) and exits."""

import asyncio
import os
import sys

import asyncpg
from pgqueuer import AsyncpgDriver, QueueManager, Queries
from pgqueuer.types import QueueExecutionMode

DSN = os.environ["PEER_DSN"]


async def setup(n: int) -> None:
    conn = await asyncpg.connect(DSN)
    q = Queries(AsyncpgDriver(conn))
    await q.install()
    step = 5000
    for i in range(0, n, step):
        k = min(step, n - i)
        await q.enqueue(["bench"] * k, [None] * k, [0] * k)
    await conn.close()


async def work() -> None:
    conn = await asyncpg.connect(DSN)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("bench")
    async def noop(job) -> None:  # noqa: ARG001
        return None

    await qm.run(batch_size=100, mode=QueueExecutionMode.drain)
    await conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        asyncio.run(setup(int(sys.argv[2])))
    else:
        asyncio.run(work())
