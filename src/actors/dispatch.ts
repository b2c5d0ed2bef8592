import { toError } from '../errors'
import type { BatchHandler, Outcome } from './actor-system'

/**
 * Routes a batch of tagged commands to one handler per tag, keeping order:
 * each run of consecutive commands with the same tag goes to its handler as
 * one sub-batch (256 grants in a row are still one transaction). The runtime
 * knows the tags only; each room supplies the handler for its own commands.
 */
export type Tagged = { type: string }

export type Handlers<C extends Tagged, R> = {
  [T in C['type']]: BatchHandler<Extract<C, { type: T }>, R>
}

export function dispatchByType<C extends Tagged, R>(handlers: Handlers<C, R>): BatchHandler<C, R> {
  return async (key, batch, context) => {
    const out: Outcome<R>[] = []
    let start = 0
    while (start < batch.length) {
      const type = batch[start]!.type as C['type']
      let end = start + 1
      while (end < batch.length && batch[end]!.type === type) end++
      const handler = handlers[type] as BatchHandler<C, R>
      const run = batch.slice(start, end)
      // a run that fails fails its own commands, not the other runs of the batch
      out.push(
        ...(await handler(key, run, context).catch((error: unknown) => {
          const e = toError(error)
          return run.map((): Outcome<R> => ({ ok: false, error: e }))
        })),
      )
      start = end
    }
    return out
  }
}
