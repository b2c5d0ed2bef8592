import { AsyncLocalStorage } from 'node:async_hooks'
import { TransactionAborted } from './errors'

/**
 * The database work of one actor batch, under one AbortSignal. The actor
 * runtime aborts the signal when the batch passes its deadline; every
 * connection the work checked out is then ended in a way whose outcome is
 * known (src/db/deadline.ts): a transaction whose COMMIT was not sent is
 * dropped with its connection, so Postgres rolls it back and it can never
 * commit later; one whose COMMIT was sent is settled on the database
 * (pg_xact_status after its backend ended) and answers what really happened.
 *
 * The signal travels by async context so that repository functions keep
 * their (trx, ...) signatures; only the code that opens a batch's
 * transactions (the generation handler, the ledger writer) says `inBatch`.
 * Writes under a scope go inside a transaction: an autocommit statement has
 * no xid known before it commits, so its fate after an abort is unknown.
 */
const scope = new AsyncLocalStorage<AbortSignal | undefined>()

/** Runs `work` with its database calls bound to `signal` (none: unbound, as outside a batch). */
export function inBatch<T>(signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  return scope.run(signal, work)
}

/** Runs `work` unbound (work a batch starts but does not own, such as waking the relay). */
export function outsideBatch<T>(work: () => T): T {
  return scope.exit(work)
}

/** The signal of the batch the caller runs in, if any. */
export function batchSignal(): AbortSignal | undefined {
  return scope.getStore()
}

/** What work aborted by `signal` fails with: its reason (the actor's 503), or TransactionAborted. */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new TransactionAborted()
}

/** One signal for work shared by several batches (a group commit): aborted when any of them is. */
export function anySignal(signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined)
  if (present.length <= 1) return present[0]
  return AbortSignal.any(present)
}
