import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB } from '../db/schema'
import type { EventName, SequencedEvent } from './event'
import type { NewEvent } from './outbox'
import { seqId, ZERO_ID } from './ids'

/**
 * The outbox's SQL (sql/0014_event_outbox.sql). Producers write events in
 * the transaction of their change (writeEvents here; the ledger's
 * ledger_apply writes its credits.changed itself); the relay
 * (outbox-relay.ts) claims, appends and marks them sent.
 */
type Q = Kysely<DB> | Transaction<DB>

/** One statement for any number of events: the next seqs of the user, one multi-row insert. */
export async function writeEvents(trx: Q, userId: string, events: readonly NewEvent[]) {
  if (events.length === 0) return
  const rows = JSON.stringify(events.map((e) => ({ n: e.name, d: e.data })))
  await sql`select outbox_append(${userId}::uuid, ${rows}::text::json)`.execute(trx)
}

/**
 * Advisory lock space of the relay's per-user locks (the second key is the
 * user id's hash; two users sharing a hash only wait for each other).
 */
const RELAY_LOCK_SPACE = 720_351_400

type PendingRow = { user_id: string; seq: number | string; name: string; json: string; at: number }

/**
 * Claims pending events for this transaction: up to `maxUsers` users whose
 * relay lock it could take (others' are skipped, not waited for), each
 * user's oldest pending events in seq order, at most `perUser` of each.
 * The rows come from the statement's snapshot, taken before its locks: a
 * row another relay marked sent just before may come back as pending, and
 * appending it again is refused by the log as present, which is harmless.
 * What matters holds: a user's claimed events start at its oldest pending
 * one, because a user's seqs commit in order and only what the log holds is
 * ever marked sent.
 */
export async function claimPending(
  trx: Transaction<DB>,
  maxUsers: number,
  perUser: number,
): Promise<SequencedEvent[]> {
  const { rows } = await sql<PendingRow>`
    select user_id, seq, name, json, at from (
      select o.user_id, o.seq, o.name, o.data::text as json,
        (extract(epoch from o.created_at) * 1000)::float8 as at,
        row_number() over (partition by o.user_id order by o.seq) as n
      from event_outbox o
      where o.sent_at is null and o.user_id in (
        select u.user_id from (
          select distinct user_id from event_outbox where sent_at is null
        ) u
        where pg_try_advisory_xact_lock(${RELAY_LOCK_SPACE}, hashtext(u.user_id::text))
        limit ${maxUsers}
      )
    ) p
    where n <= ${perUser}
    order by user_id, seq`.execute(trx)
  return rows.map((r) => ({
    userId: r.user_id,
    seq: Number(r.seq),
    name: r.name as EventName,
    json: r.json,
    at: Math.round(Number(r.at)),
  }))
}

/** Marks each user's events up to its seq as sent (the log holds them all). */
export async function markSent(trx: Transaction<DB>, upTo: Map<string, number>) {
  if (upTo.size === 0) return
  const rows = JSON.stringify([...upTo].map(([u, s]) => ({ u, s })))
  await sql`
    update event_outbox o set sent_at = now()
    from json_to_recordset(${rows}::text::json) as r (u uuid, s bigint)
    where o.user_id = r.u and o.seq <= r.s and o.sent_at is null`.execute(trx)
}

/** Deletes up to `limit` rows sent more than `retentionSeconds` ago; returns how many. */
export async function pruneSent(db: Q, retentionSeconds: number, limit: number) {
  const { rows } = await sql<{ n: number | string }>`
    with gone as (
      delete from event_outbox where (user_id, seq) in (
        select user_id, seq from event_outbox
        where sent_at < now() - make_interval(secs => ${retentionSeconds})
        order by sent_at limit ${limit}
        for update skip locked)
      returning 1)
    select count(*) as n from gone`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** One index probe: whether anything waits to be relayed (an idle poll opens no transaction). */
export async function anyPending(db: Q) {
  const { rows } = await sql<{ found: boolean }>`
    select exists (select 1 from event_outbox where sent_at is null) as found`.execute(db)
  return rows[0]?.found === true
}

/** Events written and not yet relayed, cluster-wide (metrics, tests, drain). */
export async function countPending(db: Q) {
  const { rows } = await sql<{ n: number | string }>`
    select count(*) as n from event_outbox where sent_at is null`.execute(db)
  return Number(rows[0]?.n ?? 0)
}

/** The id of the user's newest committed event: what a live tail starts after. */
export async function lastEventId(db: Q, userId: string): Promise<string> {
  const row = await db
    .selectFrom('event_sequences')
    .select('last_seq')
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return row ? seqId(Number(row.last_seq)) : ZERO_ID
}
