import { parseEntry } from './entry'
import type { Event } from './event'
import { isEventId } from './ids'

/**
 * What appends PUBLISH on the notification channel, so an instance whose
 * tail of a user is in sync delivers the event without reading the stream.
 * One message per batch of appends, a record per event, records joined by
 * RECORD_SEPARATOR; a record is
 *
 *   <user id> \n <id> \n <the event's entry text (entry.ts)>
 *
 * that is <user id> \n <id> \n <name> \n <time ms> \n <data JSON>,
 * or the user id alone when the entry is larger than MAX_CARRIED_BYTES (the
 * tail reads the stream then). Both separators are control characters, which
 * ids, names and user ids never hold and JSON.stringify always escapes.
 */
export const MAX_CARRIED_BYTES = 8 * 1024
export const RECORD_SEPARATOR = '\u001e'

/** A user id the notification format can carry: no control characters, not empty. */
export function isPlainUserId(userId: string): boolean {
  return userId.length > 0 && !/[\u0000-\u001f]/.test(userId)
}

/** The records of one notification message. */
export function notificationRecords(message: string): string[] {
  return message.split(RECORD_SEPARATOR)
}

export type Notification = {
  userId: string
  /** The event, when the record carries it. */
  carried?: Event
}

/** The user id alone: all an instance without listeners for that user needs. */
export function notifiedUser(record: string): string {
  const end = record.indexOf('\n')
  return end < 0 ? record : record.slice(0, end)
}

/** No `carried` when the record carries no event or is not one this code wrote. */
export function parseNotification(record: string): Notification {
  const userEnd = record.indexOf('\n')
  if (userEnd < 0) return { userId: record }
  const userId = record.slice(0, userEnd)
  const idEnd = record.indexOf('\n', userEnd + 1)
  if (idEnd < 0) return { userId }
  const id = record.slice(userEnd + 1, idEnd)
  const carried = isEventId(id) ? parseEntry(id, record.slice(idEnd + 1)) : undefined
  return carried ? { userId, carried } : { userId }
}
