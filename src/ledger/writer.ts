import { sql, type Kysely } from 'kysely'
import type { DB } from '../db/schema'
import type { LedgerCommand } from './commands'
import { applyCommands, prepareBatch, type AppliedBatch } from './repository'

/**
 * Group commit across actors. Each actor sends one batch at a time; the
 * writer keeps at most `slots` ledger transactions in flight, and whatever
 * queues meanwhile (other users' batches) goes into the next transaction
 * together: with 10,000 users charging at once, 8 batches cost one commit
 * instead of 8. Nothing waits on a timer: an idle slot sends at once.
 *
 *   idle ──apply──▶ flushing (≤ slots calls) ──settled──▶ next queued group, or idle
 */
export type LedgerWriter = ReturnType<typeof makeLedgerWriter>

export type LedgerWriterOptions = {
  /** Concurrent ledger transactions (default 4). */
  slots?: number
  /** Users' batches per transaction (default 64). */
  maxUsersPerCommit?: number
}

type Waiting = {
  userId: string
  commands: readonly LedgerCommand[]
  resolve: (r: AppliedBatch) => void
  reject: (e: Error) => void
}

export function makeLedgerWriter(db: Kysely<DB>, options: LedgerWriterOptions = {}) {
  const slots = options.slots ?? 4
  const maxUsers = options.maxUsersPerCommit ?? 64
  const queue: Waiting[] = []
  let inflight = 0

  function pump() {
    while (inflight < slots && queue.length > 0) {
      inflight++
      void flush(queue.splice(0, maxUsers)).finally(() => {
        inflight--
        pump()
      })
    }
  }

  async function flush(group: Waiting[]) {
    const batches = group.map((w) => prepareBatch(w.commands))
    const payload = group.map((w, i) => ({ userId: w.userId, commands: batches[i]!.payload }))
    try {
      const { rows } = await sql<{ r: Record<string, AppliedBatch> }>`
        select ledger_apply_many(${JSON.stringify(payload)}::text::jsonb) as r`.execute(db)
      group.forEach((w, i) => w.resolve(batches[i]!.expand(rows[0]!.r[w.userId]!)))
    } catch (error) {
      if (group.length === 1) return group[0]!.reject(error as Error)
      // the combined call rolled back whole: each batch again on its own, so
      // a bad batch (a user deleted meanwhile) fails alone
      await Promise.all(
        group.map((w) => applyCommands(db, w.userId, w.commands).then(w.resolve, w.reject)),
      )
    }
  }

  return {
    apply(userId: string, commands: readonly LedgerCommand[]): Promise<AppliedBatch> {
      return new Promise((resolve, reject) => {
        queue.push({ userId, commands, resolve, reject })
        pump()
      })
    },
  }
}
