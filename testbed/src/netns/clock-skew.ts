/**
 * Preload that shifts this process's wall clock by TESTBED_CLOCK_SKEW_MS (`node --import` or
 * NODE_OPTIONS=--import=…): `Date.now()` and `new Date()` read the real clock plus the skew, as on a host
 * whose clock is off. Monotonic time (`performance.now()`, timers) is unchanged, as it is on such a host.
 *
 * Why not the kernel: time namespaces (CONFIG_TIME_NS) shift only CLOCK_MONOTONIC and CLOCK_BOOTTIME, never
 * CLOCK_REALTIME, and setting the real clock would skew every process on the machine. Limit: native code
 * that reads CLOCK_REALTIME itself (none on the NeuroShard paths that compare timestamps) sees the real time.
 */
const skew = Number(process.env.TESTBED_CLOCK_SKEW_MS ?? 0)
if (Number.isFinite(skew) && skew !== 0) {
  const RealDate = Date
  const realNow = RealDate.now.bind(RealDate)
  class SkewedDate extends RealDate {
    constructor (...args: any[]) {
      if (args.length === 0) super(realNow() + skew)
      else super(...(args as [any]))
    }

    static override now (): number { return realNow() + skew }
  }
  globalThis.Date = SkewedDate as DateConstructor
}
export {}
