/**
 * A worker of {@link AggregationPool}: blocks in `Atomics.wait` until woken, reads its job from its port
 * synchronously, runs the kernel on its range of coordinates (writing into shared memory), and reports done.
 */
import { receiveMessageOnPort, parentPort, workerData } from 'node:worker_threads'
import { passRange } from './aggregators/geometric-median.js'
import { CTRL } from './pool.js'
import { orderStatisticRange, statisticFromSpec } from './select.js'
import type { PassJob } from './aggregators/geometric-median.js'
import type { OrderJob } from './select.js'
import type { MessagePort } from 'node:worker_threads'

const { ctrl, port } = workerData as { ctrl: Int32Array, port: MessagePort }

function runJob (job: OrderJob | PassJob): void {
  if (job.op === 'order') {
    orderStatisticRange(job.set, job.blockSize, statisticFromSpec(job.spec), job.out, job.lo, job.hi)
  } else {
    passRange(job.set, job.blockSize, job.z, job.c, job.total, job.mode, job.lo, job.hi, job.partials)
  }
}

parentPort?.postMessage('ready')
let seen = 0
for (;;) {
  Atomics.wait(ctrl, CTRL.request, seen)
  seen = Atomics.load(ctrl, CTRL.request)
  if (Atomics.load(ctrl, CTRL.close) !== 0) break
  const msg = receiveMessageOnPort(port)
  if (msg != null) {
    try {
      runJob(msg.message)
    } catch (err: any) {
      Atomics.store(ctrl, CTRL.error, 1)
      port.postMessage(err?.stack ?? String(err))
    }
  }
  Atomics.store(ctrl, CTRL.done, seen)
  Atomics.notify(ctrl, CTRL.done)
}
