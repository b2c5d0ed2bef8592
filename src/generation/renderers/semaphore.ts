/**
 * A counting semaphore with a FIFO queue. A waiter is either granted a slot
 * (handed over directly by a release, so a newcomer cannot overtake it) or
 * aborted by its signal, which removes it from the queue and rejects with the
 * signal's reason. Each release function works once; calling it again is a no-op.
 */
export type Release = () => void

export type Semaphore = {
  acquire(signal: AbortSignal): Promise<Release>
  inFlight(): number
  waiting(): number
}

type Waiter = { grant: () => void }

export function makeSemaphore(max: number): Semaphore {
  if (!Number.isInteger(max) || max < 1) throw new Error('a semaphore needs at least one slot')
  let held = 0
  const queue: Waiter[] = []

  const releaser = (): Release => {
    let done = false
    return () => {
      if (done) return
      done = true
      const next = queue.shift()
      if (next) next.grant()
      else held--
    }
  }

  return {
    acquire(signal) {
      if (signal.aborted) return Promise.reject(signal.reason)
      if (held < max) {
        held++
        return Promise.resolve(releaser())
      }
      return new Promise<Release>((resolve, reject) => {
        const onAbort = () => {
          const at = queue.indexOf(waiter)
          if (at >= 0) queue.splice(at, 1)
          reject(signal.reason)
        }
        const waiter: Waiter = {
          grant() {
            signal.removeEventListener('abort', onAbort)
            resolve(releaser())
          },
        }
        queue.push(waiter)
        signal.addEventListener('abort', onAbort, { once: true })
      })
    },
    inFlight: () => held,
    waiting: () => queue.length,
  }
}
